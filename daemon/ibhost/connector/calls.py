"""The one path of a request to IB: paced, time-limited, error-mapped.

Every request module (service, account, historical) sends through ``IbCalls``
and imports it, never each other: a request passes the pacing scheduler, runs
under its own timeout and the caller's deadline (a timeout raises, it never
returns an empty result), ends at once when its connection is lost, and turns
IB errors into the error catalogue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import IbhostError, from_ib
from .pacing import INTERACTIVE, PaceKey, Scheduler
from .session import Session
from .values import JOB, time_left

log = logging.getLogger("ibhost.connector.calls")
T = TypeVar("T")


class IbCalls:
    """The session, the library and the scheduler, and the one way to ask IB."""

    def __init__(self, session: Session, scheduler: Scheduler) -> None:
        self.session = session
        self.scheduler = scheduler
        self.lib = session.backend.lib
        self.ib = session.ib
        self.timeout = session.ibcfg.request_timeout

    async def call(self, what: str, fn: Callable[[], Awaitable[T]], *,
                   key: PaceKey | None = None, priority: int = INTERACTIVE,
                   timeout: float | None = None, job: str = "", small: bool = True,
                   messages: int = 1) -> T:
        """Pace, time-limit and error-map one IB request."""
        self.session.require_ready()
        limit = timeout or self.timeout
        left = time_left()
        if left is not None:
            if left <= 0:
                raise IbhostError("timeout", f"{what}: the caller's deadline has passed")
            limit = min(limit, left)

        async def guarded() -> T:
            self.session.require_ready()
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for hands a caller
                # cancelled just as the answer came the answer, and drops the cancel
                async with asyncio.timeout(limit):
                    return await self._unless_lost(fn())
            except TimeoutError:
                raise IbhostError("timeout", f"{what}: IB did not answer within "
                                             f"{limit:g}s") from None
            except self.lib.RequestError as e:
                raise from_ib(e.code, e.message) from None
            except ConnectionError as e:
                raise IbhostError("unavailable", f"{what}: connection lost ({e})") from None

        return await self.scheduler.run(guarded, key=key, priority=priority,
                                        job=job or JOB.get(),
                                        small=small, messages=messages)

    async def call_paced(self, what: str, fn: Callable[[], Awaitable[T]], *,
                         key: PaceKey, priority: int = INTERACTIVE, job: str = "",
                         small: bool = True, messages: int = 1) -> T:
        """``call`` for a historical-type request: on IB's pacing 162 (the scheduler
        has shrunk its window, or IB counts differently than documented) it is asked
        again after a backoff inside the caller's deadline (three times without one),
        instead of failing the caller."""
        backoff = 2.0 * self.scheduler.cfg.scale
        retries = 0
        while True:
            try:
                return await self.call(what, fn, key=key, priority=priority, job=job,
                                       small=small, messages=messages)
            except IbhostError as e:
                left = time_left()
                may_wait = left > backoff + 0.1 if left is not None else retries < 3
                if e.code != "pacing" or not may_wait:
                    raise
                retries += 1
                log.warning("pacing 162 on %s; retry %d in %.1fs", what, retries, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0 * max(self.scheduler.cfg.scale, 0.01))

    async def _unless_lost(self, aw: Awaitable[T]) -> T:
        """``aw``, or ConnectionError as soon as the connection it went out on is lost."""
        session = self.session
        lost = session.lost
        task = asyncio.ensure_future(aw)
        session.in_flight += 1
        try:
            if lost is None:
                return await task
            await asyncio.wait((task, lost), return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                raise ConnectionError(str(lost.exception() or "connection lost"))
            return task.result()
        finally:
            session.in_flight -= 1
            if not task.done():
                task.cancel()
                # its end, whatever it is; a cancel of this caller meanwhile still ends it
                await asyncio.gather(task, return_exceptions=True)
