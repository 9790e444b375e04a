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


OPEN_MAX = 50  # "The maximum number of simultaneous open historical data requests ... is 50"
OPEN_MAX_TEXT = "Error processing request:Only 50 simultaneous API historical data requests " \
                "allowed."


class SoftThrottle:
    """IB's soft throttle for bars of 1 minute and larger: never a refusal, slower answers.

    Each client may start ``rate`` requests per second with a burst of ``burst``; a
    request beyond that waits its turn (first come, first served). Every answer then
    takes ``base`` seconds plus ``per_bar`` per bar. All times are multiplied by
    ``scale`` (the simulator's pacing scale), so tests run it fast.
    """

    def __init__(self, scale: float = 1.0, rate: float = 5.0, burst: float = 10.0,
                 base: float = 0.3, per_bar: float = 2e-6,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.scale = scale
        self.rate = rate / max(scale, 1e-9)
        self.burst = burst
        self.base = base * scale
        self.per_bar = per_bar * scale
        self.clock = clock
        self._tokens: dict[int, float] = {}
        self._stamp: dict[int, float] = {}

    def admit(self, client_id: int, now: float | None = None) -> float:
        """Take this client's next start; return the seconds to wait before it.

        A token bucket that may go into debt: a request without a token waits until
        the tokens it owes have refilled, so waiters start in arrival order."""
        now = self.clock() if now is None else now
        tokens = self._tokens.get(client_id, self.burst)
        last = self._stamp.get(client_id, now)
        tokens = min(self.burst, tokens + (now - last) * self.rate) - 1.0
        self._tokens[client_id] = tokens
        self._stamp[client_id] = now
        return 0.0 if tokens >= 0 else -tokens / self.rate

    def service_time(self, bars: int) -> float:
        return self.base + self.per_bar * bars

    def lower_bound(self, requests: int, bars_each: int = 0) -> float:
        """The least time ``requests`` requests can take from an idle start."""
        extra = max(0.0, requests - self.burst)
        return extra / self.rate + self.service_time(bars_each)

    def reset(self) -> None:
        self._tokens.clear()
        self._stamp.clear()
