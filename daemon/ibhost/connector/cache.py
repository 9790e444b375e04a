"""Answers from IB that change rarely (option-chain parameters, contract details),
kept for an honest lifetime: ``connector.cache_max_age`` seconds at most (a caller
may ask for younger with ``maxAge``), refreshed in the background once half of it
has passed, and dropped when a connection loses IB's data (a new connection, 1101).

Every answer carries its age, so a caller can tell a cached answer from a fresh
one. Concurrent requests for one missing key share one request to IB.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from .pacing import BACKGROUND, INTERACTIVE
from .values import JOB

log = logging.getLogger("ibhost.connector.cache")

V = TypeVar("V")
Fetch = Callable[[int], Awaitable[V]]  # the priority to ask IB at -> the answer
MAX_ENTRIES = 10_000
REFRESH_AT = 0.5  # of the lifetime: from here a hit is answered and refreshed behind


class AgedCache(Generic[V]):
    def __init__(self, name: str, max_age: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.max_age = max_age
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Future[V]] = {}
        self._refreshing: dict[Hashable, asyncio.Task[None]] = {}
        self._generation = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def put(self, key: Hashable, value: V) -> None:
        """Keep ``value`` as just asked (an answer already in hand under another key)."""
        self._entries[key] = (self.clock(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (the connection's data was lost); requests under way
        still answer their callers but are not kept."""
        self._generation += 1
        self._entries.clear()
        for task in self._refreshing.values():
            task.cancel()
        self._refreshing.clear()

    async def get(self, key: Hashable, fetch: Fetch[V],
                  max_age: float | None = None) -> tuple[V, float]:
        """The answer for ``key`` and its age in seconds (0.0: just asked)."""
        limit = self.max_age if max_age is None else min(max_age, self.max_age)
        hit = self._entries.get(key)
        if hit is not None:
            age = self.clock() - hit[0]
            if age < limit:
                self.hits += 1
                if age >= self.max_age * REFRESH_AT:
                    self._refresh(key, fetch)
                return hit[1], age
        self.misses += 1
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending), 0.0
        return await self._fetch(key, fetch, INTERACTIVE), 0.0

    async def _fetch(self, key: Hashable, fetch: Fetch[V], priority: int) -> V:
        fut: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        generation = self._generation
        try:
            value = await fetch(priority)
        except BaseException as e:
            fut.set_exception(e if isinstance(e, Exception) else
                              asyncio.CancelledError())
            fut.exception()  # retrieved: the waiters re-raise it
            raise
        finally:
            if self._inflight.get(key) is fut:
                del self._inflight[key]
        if generation == self._generation:
            self.put(key, value)
        fut.set_result(value)
        return value

    def _refresh(self, key: Hashable, fetch: Fetch[V]) -> None:
        if key in self._inflight or key in self._refreshing:
            return

        async def refresh() -> None:
            JOB.set(f"ibhost/refresh-{self.name}")  # its own job, not the caller's
            try:
                await self._fetch(key, fetch, BACKGROUND)
            except Exception as e:  # the old answer stays until its lifetime ends
                log.info("background refresh of %s %s failed: %s", self.name, key, e)

        task = asyncio.get_running_loop().create_task(refresh())
        self._refreshing[key] = task
        task.add_done_callback(lambda t: self._refreshing.pop(key, None)
                               if self._refreshing.get(key) is t else None)
