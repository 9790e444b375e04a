"""The pacing rules' small parts: a request's identity for the rules (``PaceKey``), a
waiting request (``_Item``), the AIMD window on open requests (``OpenWindow``), one
identity's spending inside a sliding window (``Bucket``) and the counters for
/metrics (``PacingStats``). ``pacing.py`` schedules with them."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PaceKey:
    """Identity of a historical-type request for the pacing rules."""

    identical: Hashable
    contract: Hashable  # (conId, exchange, whatToShow)
    weight: int = 1
    hard: bool = True  # IB's hard rules (bars <= 30 s, head timestamps); else the window


@dataclass(order=True)
class _Item:
    priority: int
    seq: int
    key: PaceKey | None = field(compare=False)
    granted: asyncio.Future[float] = field(compare=False)
    enqueued: float = field(compare=False, default=0.0)
    held_by: str = field(compare=False, default="")
    job: str = field(compare=False, default="")
    small: bool = field(compare=False, default=False)
    messages: int = field(compare=False, default=1)


MESSAGE_WINDOW = 1.05  # IB counts 50 in any second, on arrival: a little margin
MESSAGE_BURST = 10  # messages in a window that may leave back to back; then spaced


@dataclass
class PacingStats:
    granted: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    delayed: dict[str, int] = field(default_factory=lambda: {
        "identical": 0, "burst": 0, "window": 0, "message_rate": 0, "spacing": 0,
        "open": 0, "share": 0})
    wait_seconds_total: float = 0.0
    wait_seconds_max: float = 0.0
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    throttled: int = 0


class OpenWindow:
    """AIMD limit on open requests for bars of 1 minute and larger (IB's soft throttle)."""

    def __init__(self, start: int, maximum: int, clock: Callable[[], float]) -> None:
        self.limit = float(start)
        self.maximum = maximum
        self.open = 0
        self.clock = clock
        self.baseline: float | None = None
        self._last_cut = -1e9

    def allows(self, small: bool) -> bool:
        return self.open < int(self.limit) + (1 if small else 0)

    def done(self, latency: float | None, throttled: bool) -> None:
        """One request ended: ``latency`` if it was answered, ``throttled`` on a 162."""
        self.open = max(0, self.open - 1)
        now = self.clock()
        if throttled:
            self._cut(now, latency or 1.0)
            return
        if latency is None:
            return
        b = self.baseline
        self.baseline = latency if b is None or latency < b else b + (latency - b) * 0.05
        if latency > 2.0 * self.baseline + 0.05:  # answers slowing down: back off
            self._cut(now, latency)
        else:
            self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)

    def _cut(self, now: float, latency: float) -> None:
        if now - self._last_cut >= latency:  # at most once per round trip
            self.limit = max(1.0, self.limit / 2.0)
            self._last_cut = now


def caller_of(job: str) -> str:
    """The identity a job belongs to: ``caller/id`` -> ``caller``."""
    return job.partition("/")[0]


class Bucket:
    """What one identity spent inside a sliding window: (time, amount) entries and
    their running sum, so a check costs nothing per waiting request."""

    def __init__(self, span: float) -> None:
        self.span = span
        self.entries: deque[tuple[float, int]] = deque()
        self.used = 0

    def add(self, now: float, amount: int) -> None:
        self.entries.append((now, amount))
        self.used += amount

    def expire(self, now: float) -> None:
        while self.entries and now - self.entries[0][0] >= self.span:
            self.used -= self.entries.popleft()[1]

    def wait(self, now: float, amount: int, limit: int) -> float:
        """Seconds until ``amount`` more fits under ``limit`` (0: it fits now)."""
        need = self.used + amount - limit
        if need <= 0 or not self.entries:
            return 0.0
        freed = 0
        for t, w in self.entries:
            freed += w
            if freed >= need:
                return max(self.span - (now - t), 0.001)
        return 0.001  # unreachable: the entries sum to ``used``

    def restamp(self, old: float, new: float, amount: int) -> None:
        """The newest entry (old, amount) happened at ``new`` instead."""
        for i in range(len(self.entries) - 1, -1, -1):
            if self.entries[i] == (old, amount):
                self.entries[i] = (new, amount)
                return

    def clear(self) -> None:
        self.entries.clear()
        self.used = 0

