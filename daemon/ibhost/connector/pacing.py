"""One scheduler in front of every IB request, so that none earns a pacing violation
and IB is shared fairly between callers.

IB's rules ("Historical Data Limitations", TWS API; now on IBKR Campus), windows x
``scale`` + ``margin``:
- for bars of 30 seconds or less and head timestamps (``PaceKey.hard``), the hard
  rules: an identical request within 15 s is answered from a short cache (and
  concurrent identical requests are coalesced); at most 5 requests per
  contract/exchange/tick type per 2 s; at most 60 per rolling 10 minutes
  (BID_ASK weighs 2). This memory is kept in a file, so a restarted connector
  does not earn a violation for what the one before it sent;
- for 1-minute bars and larger IB lifted those limits but keeps a soft throttle
  (slower answers under load) and at most 50 open requests: several run at once
  within an AIMD window (``open_start``..``open_max``) that halves on a pacing 162
  or answers much slower than usual, and grows back by one per window of
  answers; a job of one or two requests may use one slot beyond the window;
- IB's 50 messages per second, counted in messages as they leave (requests,
  cancels, heartbeats, the library's own), not in requests: while fewer than 10
  are in the last 1.05 s they go back to back, beyond that evenly spaced at
  ``messages_per_second`` per 1.05 s, and none while the messages sent, plus
  those granted and not yet sent, fill the last 1.05 s; a request the library
  follows with a cancel (a one-off tick subscription, a head timestamp)
  reserves two.
Requests are granted by priority (interactive before background), then round
robin between callers and then between their jobs (one request's chunks form one
job), so a five-year download never starves a three-day request, and one busy
caller never starves another. A caller is an identity the gateway vouches for
(``key-<digest>`` of a valid API key, or ``keyless`` for every caller without one;
programs on the control socket are their own callers). Round robin alone cannot
stop a caller from spending a budget before others arrive, so the keyless bucket
may hold at most ``keyless_share`` of the 10-minute window (a budget spent now is
gone for ten minutes) and, while a caller with a key is waiting, of the message rate
(a budget that comes back within a second, so keyless callers alone may use it
all): the rest is always there for callers with a key, and one of them alone may
still use the whole budget.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from ..config import PacingConfig
from ..errors import IbhostError
from ..files import TwoSlotFile
from ..ipc import KEYLESS
from .pacerules import PaceRules

# the rules' small parts, re-exported: ``pacing.PaceKey``, ``pacing.OpenWindow`` ... as before
from .pacewindows import (
    MESSAGE_BURST,
    MESSAGE_WINDOW,
    Bucket,
    OpenWindow,
    PaceKey,
    PacingStats,
    _Item,
    caller_of,
)

__all__ = ["BACKGROUND", "INTERACTIVE", "MESSAGE_BURST", "MESSAGE_WINDOW", "PRIORITIES", "Bucket",
           "OpenWindow", "PaceKey", "PacingStats", "Scheduler", "caller_of"]

T = TypeVar("T")
INTERACTIVE = 0
BACKGROUND = 1
PRIORITIES = {"interactive": INTERACTIVE, "background": BACKGROUND}


class Scheduler(PaceRules):
    def __init__(self, cfg: PacingConfig, clock: Callable[[], float] = time.monotonic,
                 state_path: Path | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.wall = wall
        s = cfg.scale
        self.identical_window = cfg.identical_window * s + cfg.margin
        self.burst_window = cfg.burst_window * s + cfg.margin
        self.window = cfg.window * s + cfg.margin
        self.second = MESSAGE_WINDOW  # the message-rate window is never scaled
        # Grants are spaced evenly: bursts would pile up behind the library's own
        # 45/s throttle and reach IB bunched, over 50 in one second.
        # spacing: while the last window holds fewer than MESSAGE_BURST messages, a few
        # callers at once wait for nothing; beyond that, grants are evenly spaced (a
        # burst would leave the window in a bunch and come back as one, every window)
        self.spacing = MESSAGE_WINDOW / cfg.messages_per_second
        self._last_grant = -1e9
        self._pending: list[_Item] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sent_identical: dict[Hashable, float] = {}
        self._burst: dict[Hashable, deque[float]] = {}
        self._window = Bucket(self.window)  # IB's 60 per 10 minutes, every caller
        # the keyless bucket's share of the hard window and of the message rate
        self.keyless_window = max(1, int(cfg.window_max * cfg.keyless_share))
        self.keyless_messages = max(1, int(cfg.messages_per_second * cfg.keyless_share))
        self._keyless_window = Bucket(self.window)
        self._keyless_sent = Bucket(self.second)
        self._keyed_waiting = False  # a caller with a key is queued (dispatcher's view)
        self._messages: deque[float] = deque()  # messages sent (note_message)
        self._reserved: deque[float] = deque()  # granted, not yet seen leaving
        self._cache: dict[Hashable, tuple[float, Any]] = {}
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}
        self._job_served: dict[str, float] = {}
        self._jobs_pruned_at = -1e18
        open_max = min(cfg.open_max, 50)  # IB's cap on open historical requests
        self.open = OpenWindow(min(cfg.open_start, open_max), open_max, clock)
        self.stats = PacingStats()
        self.on_grant: Callable[[float], None] | None = None  # wait seconds, for metrics
        self.state_path = state_path
        self._memory = TwoSlotFile(state_path) if state_path is not None else None
        if state_path is not None:
            self._load()

    # --- public ------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._pending)

    def window_used(self) -> int:
        self._expire(self.clock())
        return self._window.used

    def poke(self) -> None:
        """Look at the waiting requests again now (a test's clock has moved)."""
        self._wake.set()

    def note_message(self) -> None:
        """One message left for IB (called for every message the connection sends)."""
        now = self.clock()
        if self._reserved:
            self._reserved.popleft()  # a granted request leaving
        self._messages.append(now)

    async def run(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        key: PaceKey | None = None,
        priority: int = INTERACTIVE,
        cacheable: bool = True,
        job: str = "",
        small: bool = True,
        messages: int = 1,
    ) -> T:
        """Run ``fn`` when the rules allow; identical historical requests share results
        (shared read-only: callers must not change what they get)."""
        if key is not None and cacheable:
            hit = self._cache.get(key.identical)
            if hit is not None and self.clock() - hit[0] < self.identical_window:
                self.stats.cache_hits += 1
                return hit[1]
            inflight = self._inflight.get(key.identical)
            if inflight is not None:
                self.stats.coalesced += 1
                return await asyncio.shield(inflight)
        shared: asyncio.Future[Any] | None = None
        if key is not None and cacheable:
            shared = asyncio.get_running_loop().create_future()
            self._inflight[key.identical] = shared
        windowed = key is not None and not key.hard
        try:
            granted_at = await self._acquire(key, priority, job, small, messages)
            t0 = self.clock()
            if key is not None and key.hard and t0 > granted_at:
                # count the request from when it really leaves, not from its grant: a
                # busy event loop must not make two sends closer than the rules allow
                self._restamp(key, granted_at, t0, job)
            try:
                result = await fn()
            except IbhostError as e:
                if windowed:
                    throttled = e.code == "pacing"
                    self.stats.throttled += throttled
                    self._release(None, throttled)
                    windowed = False
                raise
            except BaseException:
                if windowed:
                    self._release(None, False)
                    windowed = False
                raise
            if windowed:
                self._release(self.clock() - t0, False)
                windowed = False
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
            stamp = self.clock()
            self._cache[key.identical] = (stamp, result)
            # forgotten when its window ends (the one place answers leave the cache): a
            # year of bars must not stay in memory after it was answered
            asyncio.get_running_loop().call_later(
                self.identical_window, self._forget, key.identical, stamp)
            shared.set_result(result)
        return result

    def _forget(self, identical: Hashable, stamp: float) -> None:
        hit = self._cache.get(identical)
        if hit is not None and hit[0] == stamp:
            del self._cache[identical]

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
        if self._task is not None:
            self._task.cancel()
        for item in self._pending:
            if not item.granted.done():
                item.granted.set_exception(IbhostError("unavailable", "connector stopping"))
        self._pending.clear()

    # --- granting ------------------------------------------------------------------------

    def _release(self, latency: float | None, throttled: bool) -> None:
        self.open.done(latency, throttled)
        self._wake.set()

    async def _acquire(self, key: PaceKey | None, priority: int, job: str,
                       small: bool, messages: int = 1) -> float:
        """Wait for the grant; return when it was granted (the dispatcher's clock)."""
        if len(self._pending) >= self.cfg.queue_max:
            raise IbhostError("pacing", f"pacing queue full ({self.cfg.queue_max} waiting)")
        loop = asyncio.get_running_loop()
        now = self.clock()
        item = _Item(priority, next(self._seq), key, loop.create_future(), now,
                     job=job, small=small, messages=messages)
        if not self._pending:  # nobody waits: grant here if the rules allow it now
            self._expire(now)
            self._keyed_waiting = False
            if self._delay(item, now)[0] <= 0:
                self._grant(item, now)
                return now
        self._pending.append(item)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._dispatch())
        self._wake.set()
        try:
            return await item.granted
        except asyncio.CancelledError:
            if item in self._pending:
                self._pending.remove(item)
            elif item.granted.done() and not item.granted.cancelled() and \
                    key is not None and not key.hard:
                self._release(None, False)  # granted, then cancelled before it ran
            raise

    def _order(self, item: _Item) -> tuple[int, float, float, int]:
        """Priority first, then the caller served longest ago, then that caller's job
        served longest ago, then arrival. A job is ``caller/id``."""
        caller = caller_of(item.job)
        return (item.priority, self._job_served.get(caller + "/", -1e18),
                self._job_served.get(item.job, -1e18), item.seq)

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
            self._pending = [i for i in self._pending if not i.granted.done()]
            # the keyless share of the message rate holds only while a key waits
            self._keyed_waiting = any(caller_of(i.job) != KEYLESS for i in self._pending)
            for item in sorted(self._pending, key=self._order):
                delay, rule = self._delay(item, now)
                if delay <= 0:
                    chosen = item
                    break
                if rule != "spacing" or not item.held_by:
                    item.held_by = rule  # the pacing rule that held it, counted at grant
                soonest = min(soonest, delay)
            if chosen is not None:
                self._pending.remove(chosen)
                self._grant(chosen, now)
                continue
            self._wake.clear()
            try:
                async with asyncio.timeout(None if soonest == float("inf") else soonest):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _grant(self, item: _Item, now: float) -> None:
        self._record(item, now)
        waited = now - item.enqueued
        self.stats.granted += 1
        if item.held_by:
            self.stats.delayed[item.held_by] += 1
        self.stats.wait_seconds_total += waited
        self.stats.wait_seconds_max = max(self.stats.wait_seconds_max, waited)
        self.stats.waits.append(waited)
        if self.on_grant is not None:
            self.on_grant(waited)
        item.granted.set_result(now)

    def _expire(self, now: float) -> None:
        while self._messages and now - self._messages[0] >= self.second:
            self._messages.popleft()
        while self._reserved and now - self._reserved[0] >= self.second:
            self._reserved.popleft()  # granted but never sent (answered from a cache)
        self._window.expire(now)
        self._keyless_window.expire(now)
        self._keyless_sent.expire(now)
        for k in [k for k, t in self._sent_identical.items() if now - t >= self.identical_window]:
            del self._sent_identical[k]
        if len(self._job_served) > 1000 and now - self._jobs_pruned_at >= 1.0:
            # at most once a second: with a request a second per job this is thousands
            # of entries, and every pass of the dispatcher comes here
            self._jobs_pruned_at = now
            live = {i.job for i in self._pending}
            for k in [k for k, t in self._job_served.items() if k not in live and now - t > 60]:
                del self._job_served[k]
