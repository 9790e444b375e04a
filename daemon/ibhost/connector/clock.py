"""IB's wall clock, as this machine sees it.

"No bars after now" and "the last N days" mean IB's now, not this machine's: a
laptop whose clock drifted, or a simulator started at another date, must not make
the connector ask for bars that do not exist yet. Every currentTime answer (the
heartbeat asks every few seconds) tells IB's epoch in whole seconds; the offset is
taken from it, and an offset under ``tolerance`` (the answer's own rounding and
round trip) counts as none, so a well-synchronised host keeps its finer clock.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable


class IbClock:
    def __init__(self, wall: Callable[[], float] = time.time, tolerance: float = 2.0) -> None:
        self.wall = wall
        self.tolerance = tolerance
        self.offset = 0.0  # IB's epoch minus ours, seconds
        self.observed_at: float | None = None

    def observe(self, ib_epoch: float) -> None:
        """One currentTime answer from IB (epoch seconds, whole)."""
        local = self.wall()
        offset = ib_epoch - local
        # the answer is truncated to the second and arrives after it was read: up to
        # a second behind plus the round trip, never ahead
        self.offset = 0.0 if -self.tolerance < offset < self.tolerance else offset
        self.observed_at = local

    def now(self) -> float:
        return self.wall() + self.offset

    def now_dt(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now(), dt.UTC)
