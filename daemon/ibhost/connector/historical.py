"""Historical bars: one IB request, or a long range split into legal chunks that are
fetched under pacing and handed on in time order as they arrive.

``parts()`` is the one implementation: it yields a head (the contract, the bar
size, how many IB requests), then each chunk's bars, oldest first, each bar once.
The whole answer (``historical()``) is those parts joined; the streamed answer
writes them as they come. A caller that goes away cancels what is still queued
or open at IB.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .. import ibrules
from ..errors import IbhostError, bad_request
from .bars import ColumnRequest, from_ib, records, select
from .calls import IbCalls
from .contracts import ContractSpec
from .pacing import INTERACTIVE, PaceKey
from .shapes import SHAPES, Columns
from .values import release_memory

log = logging.getLogger("ibhost.connector.historical")

CHUNKS_QUEUED = 8  # chunks of one job queued at the scheduler at a time
TRIM_AFTER_BARS = 50_000  # a job this large gives its memory back when done


def ib_end(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y%m%d-%H:%M:%S")


class HistoricalRequests:
    def __init__(self, calls: IbCalls, resolve: Callable[[ContractSpec], Awaitable[Any]],
                 now: Callable[[], dt.datetime]) -> None:
        """``resolve``: the one qualified contract a spec names (the contract cache);
        ``now``: the clock."""
        self.calls = calls
        self.resolve = resolve
        self.now = now
        self.jobs: dict[str, dict[str, Any]] = {}  # running jobs, for /status

    async def historical(self, spec: ContractSpec, **kw: Any) -> dict[str, Any]:
        """The whole answer at once."""
        it = self.parts(spec, **kw)
        head = await anext(it)
        bars: list[dict[str, Any]] = []
        async for part in it:
            bars += records(part)
        return {**head, "bars": bars}

    async def encoded(self, spec: ContractSpec, shape: str = "columns",
                      **kw: Any) -> bytes:
        """The whole answer in one of ``shapes.SHAPES`` (v1's columnar JSON, KTRDR's
        body, the bridge's bars), encoded chunk by chunk as the chunks arrive."""
        it = self.parts(spec, **kw)
        head = await anext(it)
        out = SHAPES[shape](kw["bar_size"])
        count = 0
        async for part in it:
            if part["t"]:
                count += len(part["t"])
                out.add(part)
        return out.done(head, count)

    async def parts(
        self, spec: ContractSpec, *, bar_size: str, what: str, use_rth: bool,
        start: dt.datetime | None, end: dt.datetime | None, duration: str | None,
        priority: int = INTERACTIVE, job: str = "",
    ) -> AsyncIterator[Any]:
        """Yield the head, then the bars of each chunk as columns (``Columns``), in time
        order, each bar once."""
        bar = ibrules.bar_seconds(bar_size)
        if bar is None:
            raise bad_request("barSize", f"must be one of {', '.join(ibrules.BAR_SIZES)}")
        if what and what not in ibrules.WHAT_TO_SHOW:
            raise bad_request("whatToShow", f"must be one of {', '.join(ibrules.WHAT_TO_SHOW)}")
        c = await self.resolve(spec)
        # IB has no TRADES for forex and CFDs: their natural default is MIDPOINT
        what = what or ("MIDPOINT" if c.secType in ("CASH", "CFD") else "TRADES")
        end_t = end or self.now()
        job = job or uuid.uuid4().hex[:12]
        head = {"conId": c.conId, "symbol": c.symbol, "barSize": bar_size, "whatToShow": what,
                "useRTH": use_rth}
        if duration:
            parsed = ibrules.parse_duration(duration)
            if parsed is None:
                raise bad_request("duration", "must look like '3 D' (units S, D, W, M, Y; "
                                  "at most 86400 S, 365 D, 52 W, 12 M, 50 Y)")
            secs = ibrules.duration_seconds(*parsed)
            lo, hi = ibrules.step_limits(secs)
            if bar > hi:
                raise bad_request("duration", f"{duration} is too short for {bar_size} "
                                  "bars by IB's step-size rules")
            if bar < lo and ibrules.hard_paced(bar):
                # bars of 30 s or less spend IB's 60-per-10-minutes budget: a range
                # that needs many requests is asked for explicitly (start/end)
                raise bad_request("duration", f"{duration} is not allowed with {bar_size} "
                                  "bars by IB's step-size rules; give start/end instead")
            if bar >= lo:
                bars = await self._once(c, ib_end(end) if end else "", duration, bar_size,
                                        what, use_rth, priority, chunked=False, job=job,
                                        small=True)
                yield {**head, "requests": 1}
                yield bars
                return
            # more bars than one request may carry by IB's step-size rules (1 min over
            # 2 D, wheel-strat's intraday default): the same range, asked in chunks
            start = end_t - dt.timedelta(seconds=secs)
        if start is None:
            raise bad_request("start", "give start (and optionally end) or duration")
        if start >= end_t:
            raise bad_request("start", "must be before end")
        now = self.now()
        if end_t > now:  # there are no bars after now: never ask IB for them
            end_t = now
            if start >= end_t:
                yield {**head, "requests": 0}
                return
        dur, secs = ibrules.chunk_duration(bar)
        windows = []  # chunk end times, newest first
        t = end_t
        while t > start:
            windows.append(t)
            t -= dt.timedelta(seconds=secs)
        if len(windows) > 1:  # one request in trading days, where IB allows it
            days = ibrules.one_request_days(bar, start, end_t,
                                            weekends=c.secType == "CRYPTO")
            if days is not None:
                windows, dur = [end_t], f"{days} D"
        if len(windows) > 20000:
            raise bad_request("start", f"range needs {len(windows)} IB requests; "
                                       "use a larger bar size or a shorter range")
        windows.reverse()  # oldest first: answers can be handed on in time order
        yield {**head, "requests": len(windows)}
        async for part in self._chunks(c, windows, dur, bar_size, what, use_rth, priority,
                                       job, start, end_t):
            yield part

    async def _chunks(self, c: Any, windows: list[dt.datetime], dur: str, bar_size: str,
                      what: str, use_rth: bool, priority: int, job: str, start: dt.datetime,
                      end_t: dt.datetime) -> AsyncIterator[Columns]:
        small = len(windows) <= 2
        progress = {"job": job, "symbol": c.symbol, "barSize": bar_size,
                    "chunks": len(windows), "chunksDone": 0, "bars": 0,
                    "startedAt": time.time()}
        self.jobs[job] = progress
        sem = asyncio.Semaphore(CHUNKS_QUEUED)

        async def one(w: dt.datetime) -> Columns:
            async with sem:
                return await self._once(c, ib_end(w), dur, bar_size, what, use_rth,
                                        priority, chunked=True, job=job, small=small)

        tasks = [asyncio.ensure_future(one(w)) for w in windows]
        lo_t, hi_t = start.timestamp(), end_t.timestamp()
        last = lo_t - 1
        try:
            for task in tasks:  # in time order, each as soon as it and those before are in
                # waited on, not awaited: a cancel of the caller must end the caller,
                # not be handed to a chunk that may already have its answer
                await asyncio.wait((task,))
                kept = select(task.result(), max(last + 1, lo_t), hi_t)
                if kept["t"]:
                    last = kept["t"][-1]
                progress["chunksDone"] += 1
                progress["bars"] += len(kept["t"])
                yield kept
        finally:
            self.jobs.pop(job, None)
            for task in tasks:  # the caller went away or a chunk failed: stop the rest
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if progress["bars"] >= TRIM_AFTER_BARS:
                # once the answer has gone out and nothing large is running, the heap
                # it used goes back to the system
                asyncio.get_running_loop().call_later(2.0, self._trim)

    def _trim(self) -> None:
        if not self.jobs:
            release_memory()

    async def _request_bars(self, c: Any, end: str, duration: str, bar_size: str, what: str,
                            use_rth: bool) -> Any:
        """reqHistoricalData that is cancelled at IB (cancelHistoricalData) when its
        caller goes away (the library's own async call leaves it open); its answer
        read as columns (bars.py), or as the library's bars where it reads them."""
        calls = self.calls
        ib = calls.ib
        req_id = ib.client.getReqId()
        future = ib.wrapper.startReq(req_id, c, container=ColumnRequest())
        ib.client.reqHistoricalData(req_id, c, end, duration, bar_size, what, use_rth, 2,
                                    False, [])
        try:
            return await future
        except asyncio.CancelledError:
            if calls.session.usable:
                ib.client.cancelHistoricalData(req_id)
            ib.wrapper._endReq(req_id)
            raise
        finally:  # an answer or error given to _endReq leaves the container behind
            ib.wrapper._results.pop(req_id, None)

    async def _once(self, c: Any, end: str, duration: str, bar_size: str, what: str,
                    use_rth: bool, priority: int, *, chunked: bool, job: str = "",
                    small: bool = True) -> Columns:
        bar = ibrules.bar_seconds(bar_size) or 0
        key = PaceKey(("hist", c.conId, c.exchange, end, duration, bar_size, what, use_rth),
                      (c.conId, c.exchange, what), 2 if what == "BID_ASK" else 1,
                      hard=ibrules.hard_paced(bar))

        async def fetch() -> Columns:
            return from_ib(await self._request_bars(c, end, duration, bar_size, what,
                                                    use_rth))

        try:
            return await self.calls.call_paced(
                f"historical {c.symbol} {bar_size} {end or 'now'}", fetch, key=key,
                priority=priority, job=job, small=small)
        except IbhostError as e:
            if chunked and e.code == "no_data":
                return from_ib([])  # a closed market inside a long range is not a failure
            raise
