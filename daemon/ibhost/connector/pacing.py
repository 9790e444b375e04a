"""One scheduler in front of every IB request, so that none earns a pacing violation.

Rules (IB "Historical Data Limitations", windows x ``scale`` + ``margin``):
- an identical historical request within 15 s is answered from a short cache;
  concurrent identical requests are coalesced into one IB request; if the first
  failed, an identical retry waits out the window instead;
- at most 5 requests per contract/exchange/tick type per 2 s;
- at most 60 per rolling 10 minutes (BID_ASK weighs 2);
- at most ``messages_per_second`` requests of any kind per second.
Interactive requests are granted before background ones.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..config import PacingConfig
from ..errors import IbhostError

log = logging.getLogger("ibhost.connector.pacing")

T = TypeVar("T")
INTERACTIVE = 0
BACKGROUND = 1
PRIORITIES = {"interactive": INTERACTIVE, "background": BACKGROUND}


@dataclass(frozen=True)
class PaceKey:
    """Identity of a historical-type request for the pacing rules."""

    identical: Hashable
    contract: Hashable  # (conId, exchange, whatToShow)
    weight: int = 1


@dataclass(order=True)
class _Item:
    priority: int
    seq: int
    key: PaceKey | None = field(compare=False)
    granted: asyncio.Future[None] = field(compare=False)
    enqueued: float = field(compare=False, default=0.0)
    held_by: str = field(compare=False, default="")


@dataclass
class PacingStats:
    granted: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    delayed: dict[str, int] = field(default_factory=lambda: {
        "identical": 0, "burst": 0, "window": 0, "message_rate": 0, "spacing": 0})
    wait_seconds_total: float = 0.0
    wait_seconds_max: float = 0.0
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=1000))


class Scheduler:
    def __init__(self, cfg: PacingConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        s = cfg.scale
        self.identical_window = cfg.identical_window * s + cfg.margin
        self.burst_window = cfg.burst_window * s + cfg.margin
        self.window = cfg.window * s + cfg.margin
        self.second = 1.0 + cfg.margin  # the message-rate window is never scaled
        # Grants are spaced evenly: bursts would pile up behind the library's own
        # 45/s throttle and reach IB bunched, over 50 in one second.
        self.spacing = 1.0 / cfg.messages_per_second
        self._last_grant = -1e9
        self._pending: list[_Item] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sent_identical: dict[Hashable, float] = {}
        self._burst: dict[Hashable, deque[float]] = {}
        self._window: deque[tuple[float, int]] = deque()
        self._messages: deque[float] = deque()
        self._cache: dict[Hashable, tuple[float, Any]] = {}
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}
        self.stats = PacingStats()
        self.on_grant: Callable[[float], None] | None = None  # wait seconds, for metrics

    # --- public ------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._pending)

    def window_used(self) -> int:
        self._expire(self.clock())
        return sum(w for _, w in self._window)

    async def run(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        key: PaceKey | None = None,
        priority: int = INTERACTIVE,
        cacheable: bool = True,
    ) -> T:
        """Run ``fn`` when the rules allow; identical historical requests share results."""
        if key is not None and cacheable:
            hit = self._cache.get(key.identical)
            if hit is not None and self.clock() - hit[0] < self.identical_window:
                self.stats.cache_hits += 1
                return copy.deepcopy(hit[1])
            inflight = self._inflight.get(key.identical)
            if inflight is not None:
                self.stats.coalesced += 1
                return copy.deepcopy(await asyncio.shield(inflight))
        shared: asyncio.Future[Any] | None = None
        if key is not None and cacheable:
            shared = asyncio.get_running_loop().create_future()
            self._inflight[key.identical] = shared
        try:
            await self._acquire(key, priority)
            result = await fn()
        except BaseException as e:
            if shared is not None:
                self._inflight.pop(key.identical, None)  # type: ignore[union-attr]
                if not shared.done():
                    shared.set_exception(e if isinstance(e, Exception) else
                                         IbhostError("unavailable", "request cancelled"))
                    shared.exception()  # mark retrieved
            raise
        if shared is not None and key is not None:
            self._inflight.pop(key.identical, None)
            self._cache[key.identical] = (self.clock(), copy.deepcopy(result))
            shared.set_result(copy.deepcopy(result))  # waiters copy again from this one
        return result

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for item in self._pending:
            if not item.granted.done():
                item.granted.set_exception(IbhostError("unavailable", "connector stopping"))
        self._pending.clear()

    # --- granting ------------------------------------------------------------------------

    async def _acquire(self, key: PaceKey | None, priority: int) -> None:
        if len(self._pending) >= self.cfg.queue_max:
            raise IbhostError("pacing", f"pacing queue full ({self.cfg.queue_max} waiting)")
        loop = asyncio.get_running_loop()
        item = _Item(priority, next(self._seq), key, loop.create_future(), self.clock())
        self._pending.append(item)
        self._pending.sort()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._dispatch())
        self._wake.set()
        try:
            await item.granted
        except asyncio.CancelledError:
            if item in self._pending:
                self._pending.remove(item)
            raise

    async def _dispatch(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = self.clock()
            self._expire(now)  # once per pass, not once per waiting request
            soonest = float("inf")
            chosen = None
            for item in self._pending:
                if item.granted.done():  # cancelled by its waiter
                    continue
                delay, rule = self._delay(item.key, now)
                if delay <= 0:
                    chosen = item
                    break
                if rule != "spacing" or not item.held_by:
                    item.held_by = rule  # the pacing rule that held it, counted at grant
                soonest = min(soonest, delay)
            self._pending = [i for i in self._pending if not i.granted.done() or i is chosen]
            if chosen is not None:
                self._pending.remove(chosen)
                self._record(chosen.key, now)
                waited = now - chosen.enqueued
                self.stats.granted += 1
                if chosen.held_by:
                    self.stats.delayed[chosen.held_by] += 1
                self.stats.wait_seconds_total += waited
                self.stats.wait_seconds_max = max(self.stats.wait_seconds_max, waited)
                self.stats.waits.append(waited)
                if self.on_grant is not None:
                    self.on_grant(waited)
                chosen.granted.set_result(None)
                continue
            if soonest == float("inf"):
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), soonest)
            except TimeoutError:
                pass

    def _expire(self, now: float) -> None:
        while self._messages and now - self._messages[0] >= self.second:
            self._messages.popleft()
        while self._window and now - self._window[0][0] >= self.window:
            self._window.popleft()
        for k in [k for k, t in self._sent_identical.items() if now - t >= self.identical_window]:
            del self._sent_identical[k]
        for k in [k for k, (t, _) in self._cache.items() if now - t >= self.identical_window]:
            del self._cache[k]

    def _delay(self, key: PaceKey | None, now: float) -> tuple[float, str]:
        """Seconds until this request may go, and the rule that holds it.

        The caller expires old entries first (``_expire(now)``)."""
        if len(self._messages) >= self.cfg.messages_per_second:
            return self.second - (now - self._messages[0]), "message_rate"
        if now - self._last_grant < self.spacing:
            return self.spacing - (now - self._last_grant), "spacing"
        if key is None:
            return 0.0, ""
        sent = self._sent_identical.get(key.identical)
        if sent is not None:
            return self.identical_window - (now - sent), "identical"
        burst = self._burst.get(key.contract)
        if burst:
            while burst and now - burst[0] >= self.burst_window:
                burst.popleft()
            if len(burst) >= self.cfg.burst_max:
                return self.burst_window - (now - burst[0]), "burst"
        used = sum(w for _, w in self._window)
        if used + key.weight > self.cfg.window_max and self._window:
            # wait until enough weight has left the window
            need = used + key.weight - self.cfg.window_max
            freed = 0
            for t, w in self._window:
                freed += w
                if freed >= need:
                    return self.window - (now - t), "window"
        return 0.0, ""

    def _record(self, key: PaceKey | None, now: float) -> None:
        self._messages.append(now)
        self._last_grant = now
        if key is None:
            return
        self._sent_identical[key.identical] = now
        self._burst.setdefault(key.contract, deque()).append(now)
        self._window.append((now, key.weight))
