"""Sleep/wake detection from clock jumps.

Linux: CLOCK_BOOTTIME keeps counting while suspended, CLOCK_MONOTONIC does not;
their difference grows by the time slept. macOS: the monotonic clock stops
during sleep while the wall clock does not. Either way, a jump of that offset
between two checks means the machine slept.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def default_offset() -> Callable[[], float]:
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is not None:
        return lambda: time.clock_gettime(boottime) - time.monotonic()
    return lambda: time.time() - time.monotonic()


class SleepDetector:
    def __init__(self, threshold: float, offset: Callable[[], float] | None = None) -> None:
        self.threshold = threshold
        self.offset = offset or default_offset()
        self._last = self.offset()

    def check(self) -> float | None:
        """Seconds slept since the last check, if more than the threshold."""
        now = self.offset()
        jump = now - self._last
        self._last = now
        return jump if jump >= self.threshold else None
