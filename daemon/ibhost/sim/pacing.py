"""IB's pacing rules, enforced the way the gateway does (error 162 / error 100).

Windows are multiplied by ``scale`` so tests can run them fast
(0.01 turns the 10-minute window into 6 s). The clock is injectable.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable

PACING_TEXT = (
    "Historical Market Data Service error message:Historical data request pacing violation"
)
RATE_TEXT = "Max rate of messages per second has been exceeded:max=50 rec={n} (1)"


class HistoricalPacer:
    """Identical within 15 s; >=6 same contract/exchange/tick type in 2 s; >60 in 10 min."""

    IDENTICAL_WINDOW = 15.0
    BURST_WINDOW = 2.0
    BURST_MAX = 5
    LONG_WINDOW = 600.0
    LONG_MAX = 60

    def __init__(self, scale: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.scale = scale
        self.clock = clock
        self._identical: dict[Hashable, float] = {}
        self._burst: dict[Hashable, deque[float]] = {}
        self._long: deque[tuple[float, int]] = deque()

    def check(self, identical_key: Hashable, burst_key: Hashable, weight: int = 1,
              now: float | None = None) -> str | None:
        """Record a request; return the violated rule's name, or None if it is allowed.

        ``now`` is the request's arrival time (default: the clock). A refused request
        is not counted, so a client that waits is served again.
        """
        now = self.clock() if now is None else now
        ident_w = self.IDENTICAL_WINDOW * self.scale
        burst_w = self.BURST_WINDOW * self.scale
        long_w = self.LONG_WINDOW * self.scale
        for k in [k for k, t in self._identical.items() if now - t >= ident_w]:
            del self._identical[k]
        last = self._identical.get(identical_key)
        if last is not None:
            return "identical"
        burst = self._burst.setdefault(burst_key, deque())
        while burst and now - burst[0] >= burst_w:
            burst.popleft()
        if len(burst) + 1 > self.BURST_MAX:
            return "burst"
        while self._long and now - self._long[0][0] >= long_w:
            self._long.popleft()
        used = sum(w for _, w in self._long)
        if used + weight > self.LONG_MAX:
            return "ten_minute"
        self._identical[identical_key] = now
        burst.append(now)
        self._long.append((now, weight))
        return None

    def reset(self) -> None:
        self._identical.clear()
        self._burst.clear()
        self._long.clear()


class MessageRate:
    """More than ``limit`` messages in any one second from one client is a violation."""

    def __init__(self, limit: int = 50, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._times: deque[float] = deque()

    def hit(self) -> int | None:
        """Record one message; return the count in the last second if over the limit."""
        now = self.clock()
        self._times.append(now)
        while self._times and now - self._times[0] >= 1.0:
            self._times.popleft()
        n = len(self._times)
        return n if n > self.limit else None
