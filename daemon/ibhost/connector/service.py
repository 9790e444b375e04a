"""Every IB request the connector makes for its clients.

Each request passes the pacing scheduler, runs under its own timeout (a timeout
raises, it never returns an empty result), and turns IB errors into the error
catalogue (all three in ``calls.IbCalls``). Historical ranges longer than one IB
request are chunked and stitched.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

from .. import models
from ..errors import IbhostError, from_ib
from .account import AccountRequests
from .cache import AgedCache
from .calls import IbCalls
from .contracts import (
    CANDIDATES,
    ContractSpec,
    ambiguous,
    contract_ref,
    describe_details,
    to_contract,
)
from .historical import HistoricalRequests
from .localstate import StateAges
from .orders import OrderRequests
from .pacing import BACKGROUND, INTERACTIVE, PaceKey, Scheduler
from .session import USABLE, Session, State
from .values import JOB, _greek, _num, _quote, _utc
from .wire import Wire

log = logging.getLogger("ibhost.connector.service")
T = TypeVar("T")
# The library's own throttle: never more than this many messages leave in any second
# (by the time they leave). IB counts 50 on arrival, and arrival times jitter: a
# message delayed on its way (a pause in the gateway, or in the reader) lands in the
# next second beside one sent a full second after it, so a sender at exactly 50
# earns the occasional error 100 and a dropped connection. Two in hand absorb that.
IB_MESSAGES_PER_SECOND = 48


class _Abandoned(Exception):
    """A shared snapshot whose own caller went away before IB answered."""


class Service:
    def __init__(self, session: Session, scheduler: Scheduler, *,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.session = session
        self.scheduler = scheduler
        # the one paced, time-limited, error-mapped path to IB, shared with the
        # account and historical requests
        self.calls = IbCalls(session, scheduler)
        self._call = self.calls.call
        self._call_paced = self.calls.call_paced
        self.lib = session.backend.lib
        self.ib = session.ib
        self.now = clock
        self.timeout = session.ibcfg.request_timeout
        max_age = session.cfg.connector.cache_max_age
        # contract details per spec, and option-chain parameters per underlying: both
        # change a few times a day at most, and are lost with the connection's data
        self.contract_cache: AgedCache[list[Any]] = AgedCache("contracts", max_age)
        self.chain_cache: AgedCache[models.OptionChain] = AgedCache("chains", max_age)
        self._details: dict[int, Any] = {}  # conId -> details: long names, minimum ticks
        self._md_type: int | None = None  # IB's for this connection; None: not known
        self._snapshots: dict[tuple[Any, ...], asyncio.Future[models.Quote]] = {}  # on the way
        session.on_resubscribe.append(self.forget_cached)
        self.ages = StateAges(self.ib)
        session.listeners.append(self._on_state)
        self._names_asked: set[int] = set()  # conIds whose long name is being looked up
        self._background: set[asyncio.Task[Any]] = set()
        # every message that leaves counts against IB's 50 per second (the scheduler's
        # grants, cancels, heartbeats, the library's own); the library's throttle stays
        # as a backstop just under IB's limit for what is not paced (cancels that bunch
        # up, re-subscriptions after a reconnect): set as low as the scheduler's rate,
        # its first-come queue would hold interactive requests behind a download's
        # (counted as they leave: the wire spaces bursts, cancels above all)
        conn = self.ib.client.conn
        self.wire = Wire(conn.sendMsg, scheduler.note_message)
        conn.sendMsg = self.wire
        self.ib.disconnectedEvent += self.wire.reset
        self.ib.client.MaxRequests = IB_MESSAGES_PER_SECOND
        self.account = AccountRequests(self.calls)
        self.history = HistoricalRequests(self.calls, self.resolve, lambda: self.now())
        self.orders = OrderRequests(self.calls, self.resolve, self._details.get)

    # --- contracts ---------------------------------------------------------------------

    def _on_state(self, old: State, new: State, reason: str) -> None:
        if new in USABLE and old not in USABLE:  # the library has just synchronised
            self.ages.synced()
            self._md_type = None  # a new connection, or one IB may have reset
            self._names_asked.clear()
            self.in_background(self.account.warm())
            self.in_background(self._look_up_names())

    @property
    def background_busy(self) -> bool:
        """Is a job of the connector's own (account summary, names) still running?"""
        return bool(self._background)

    def in_background(self, coro: Any) -> None:
        """Run ``coro`` as the connector's own background job (not a caller's)."""
        async def run() -> None:
            JOB.set("ibhost/background")
            try:
                await coro
            except IbhostError as e:
                log.info("background request failed: %s", e.message)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def forget_cached(self) -> None:
        """A new connection, or 1101 (data lost): IB is asked again."""
        self.contract_cache.clear()
        self.chain_cache.clear()

    async def details(self, spec: ContractSpec, priority: int = INTERACTIVE) -> list[Any]:
        contract = to_contract(self.lib, spec)
        result: list[Any] = await self._call(
            "contract details", lambda: self.ib.reqContractDetailsAsync(contract),
            priority=priority)
        if not result:
            raise IbhostError("not_found", f"no contract matches {spec.symbol or spec.conId}",
                              field="symbol", ib_code=200)
        return result

    async def cached_details(self, spec: ContractSpec,
                             max_age: float | None = None) -> tuple[list[Any], float]:
        """Contract details from the cache (``connector.cache_max_age``), and their age.
        Each contract found (a unique one, or the candidates an ambiguous answer
        names, such as a future's expiries) is also kept under the spec that names it
        by conId (the one KTRDR's and the bridge's paths send next), so choosing it
        asks IB nothing more."""
        found, age = await self.contract_cache.get(
            spec.key(), lambda prio: self.details(spec, prio), max_age)
        if len(found) == 1:
            self._details[found[0].contract.conId] = found[0]
        for cd in found[:CANDIDATES]:
            c = cd.contract
            exact = ContractSpec(secType=c.secType, exchange=spec.exchange or c.exchange,
                                 currency=c.currency, conId=c.conId).key()
            if exact != spec.key() and exact not in self.contract_cache:
                self.contract_cache.put(exact, [cd])
        return found, age

    async def resolve(self, spec: ContractSpec) -> Any:
        """Exactly one qualified contract (from the contract cache)."""
        details, _ = await self.cached_details(spec)
        if len(details) > 1:
            raise ambiguous(spec, details)
        c = details[0].contract
        if spec.exchange and spec.exchange != c.exchange:
            c = copy.copy(c)  # the cached details keep IB's own
            c.exchange = spec.exchange
        return c

    async def validate(self, spec: ContractSpec,
                       max_age: float | None = None) -> tuple[models.ContractDetails, float]:
        details, age = await self.cached_details(spec, max_age)
        if len(details) > 1:
            raise ambiguous(spec, details)
        return describe_details(details[0]), age

    # --- historical --------------------------------------------------------------------

    async def head_timestamp(self, spec: ContractSpec, what: str, use_rth: bool,
                             priority: int = INTERACTIVE) -> dt.datetime:
        c = await self.resolve(spec)
        key = PaceKey(("head", c.conId, c.exchange, what, use_rth), (c.conId, c.exchange, what))
        ts = await self._call_paced(f"head timestamp {c.symbol}",
                                    lambda: self.ib.reqHeadTimeStampAsync(c, what, use_rth, 2),
                                    key=key, priority=priority,
                                    messages=2)  # the library cancels it once answered
        if not isinstance(ts, dt.datetime | dt.date):
            raise IbhostError("no_data", "IB returned no head timestamp")
        return _utc(ts)

    # --- options and market data -----------------------------------------------------

    async def option_chain(self, spec: ContractSpec,
                           max_age: float | None = None) -> tuple[models.OptionChain, float]:
        """Option-chain parameters (reqSecDefOptParams) and their age: they change a
        few times a day, so they are kept (``connector.cache_max_age``)."""
        und = await self.resolve(spec)

        async def fetch(priority: int) -> models.OptionChain:
            chains = await self._call(
                "option chain",
                lambda: self.ib.reqSecDefOptParamsAsync(und.symbol, "", und.secType,
                                                        und.conId), priority=priority)
            if not chains:
                raise IbhostError("not_found", f"no option chain for {und.symbol}",
                                  field="symbol")
            return models.OptionChain(
                underlying=models.Underlying(conId=und.conId, symbol=und.symbol,
                                             secType=und.secType),
                chains=[models.OptionChainEntry(
                    exchange=ch.exchange, tradingClass=ch.tradingClass,
                    multiplier=ch.multiplier, expirations=sorted(ch.expirations),
                    strikes=sorted(ch.strikes)) for ch in chains])

        return await self.chain_cache.get(und.conId, fetch, max_age)

    def market_data_type(self, md_type: int) -> None:
        """Make ``md_type`` the connection's market-data type for the reqMktData sent
        next. IB applies the type in force when a request arrives, so this is called
        right before the request goes out (in the same step), inside its paced call:
        set earlier, a request of another type granted first would go out under it."""
        if md_type != self._md_type:
            self.ib.reqMarketDataType(md_type)
            self._md_type = md_type

    def type_switch(self, md_type: int) -> int:
        """Messages a request of ``md_type`` may cost beyond its own (for the pacer)."""
        return int(md_type != self._md_type)

    async def snapshot(self, spec: ContractSpec, *, generic: list[int], md_type: int,
                       wait: float) -> models.Quote:
        """One snapshot of a contract's quote. Callers asking for the same contract
        (same ticks, market-data type and wait) while a snapshot of it is on its way share
        that one: IB's answer comes after each of them asked, with one message to IB
        instead of one each (ten containers polling one symbol)."""
        c = await self.resolve(spec)
        key = (c.conId, md_type, tuple(sorted(generic)), wait)
        while (pending := self._snapshots.get(key)) is not None:
            self.scheduler.stats.coalesced += 1
            try:
                return await asyncio.shield(pending)
            except _Abandoned:  # its caller went away first: ask again
                continue
        mine: asyncio.Future[models.Quote] = asyncio.get_running_loop().create_future()
        self._snapshots[key] = mine
        try:
            quote = await self._snapshot(c, generic, md_type, wait)
        except BaseException as e:
            mine.set_exception(_Abandoned() if isinstance(e, asyncio.CancelledError) else e)
            mine.exception()  # retrieved: the callers sharing it re-raise it
            raise
        else:
            mine.set_result(quote)
            return quote
        finally:
            if self._snapshots.get(key) is mine:
                del self._snapshots[key]

    async def _snapshot(self, c: Any, generic: list[int], md_type: int,
                        wait: float) -> models.Quote:
        switch = self.type_switch(md_type)
        if not generic:
            async def once() -> Any:
                self.market_data_type(md_type)
                return await self.ib.reqTickersAsync(c)

            tickers = await self._call("snapshot", once, timeout=min(self.timeout, 15.0),
                                       messages=1 + switch)
            return self._ticker_dict(tickers[0])
        # IB refuses generic ticks on a snapshot (321): stream briefly, then cancel.
        return await self._call("snapshot", lambda: self._stream_once(c, generic, md_type,
                                                                      wait),
                                timeout=wait + 10.0, messages=2 + switch)  # + its cancel

    async def _stream_once(self, c: Any, generic: list[int], md_type: int,
                           wait: float) -> models.Quote:
        failed: asyncio.Future[IbhostError] = asyncio.get_running_loop().create_future()

        def on_error(req_id: int, code: int, msg: str, contract: Any = None) -> None:
            if contract is not None and getattr(contract, "conId", None) == c.conId and \
                    code in (200, 321, 322, 354, 10089, 10090, 10197) and not failed.done():
                failed.set_result(from_ib(code, msg))

        self.ib.errorEvent += on_error
        self.market_data_type(md_type)
        ticker = self.ib.reqMktData(c, ",".join(str(g) for g in generic), False, False)
        try:
            loop = asyncio.get_running_loop()
            end = loop.time() + wait
            while loop.time() < end and not failed.done():
                if self._complete(ticker, generic):
                    break
                await asyncio.sleep(0.05)
            if failed.done():
                raise failed.result()
            return self._ticker_dict(ticker)
        finally:
            self.ib.errorEvent -= on_error
            if self.session.usable:
                self.ib.cancelMktData(c)

    @staticmethod
    def _complete(t: Any, generic: list[int]) -> bool:
        need = [t.last if _quote(t.last) is not None else t.close]
        if 104 in generic:
            need.append(t.histVolatility)
        if 106 in generic:
            need.append(t.impliedVolatility)
        if 101 in generic:
            need.append(t.callOpenInterest or t.putOpenInterest or math.nan)
        if 100 in generic:
            need.append(t.callVolume or t.putVolume or math.nan)
        return all(_num(x) is not None for x in need)

    @staticmethod
    def _ticker_dict(t: Any) -> models.Quote:
        c = t.contract
        # model greeks first; for an option, the last/bid/ask computation otherwise
        sources = [t.modelGreeks]
        if c is not None and c.secType == "OPT":
            sources += [t.lastGreeks, t.bidGreeks, t.askGreeks]
        g = next((x for x in sources if x is not None), None)
        greeks = None if g is None else models.Greeks(**{
            k: _greek(k, getattr(g, k))
            for k in ("impliedVol", "delta", "gamma", "vega", "theta", "optPrice", "undPrice")})
        mdt = int(t.marketDataType or 1)
        return models.Quote(
            conId=c.conId if c else None, symbol=c.symbol if c else None,
            time=t.time.isoformat() if t.time else None,
            bid=_quote(t.bid), ask=_quote(t.ask), last=_quote(t.last),
            bidSize=_num(t.bidSize), askSize=_num(t.askSize),
            lastSize=_num(t.lastSize), volume=_num(t.volume), open=_num(t.open),
            high=_num(t.high), low=_num(t.low), close=_num(t.close),
            marketDataType=mdt, delayed=mdt in (3, 4),
            greeks=greeks, impliedVolatility=_num(t.impliedVolatility),
            histVolatility=_num(t.histVolatility),
            # contracts are counted whole
            callOpenInterest=_count(t.callOpenInterest),
            putOpenInterest=_count(t.putOpenInterest),
            callVolume=_count(t.callVolume), putVolume=_count(t.putVolume),
        )

    def positions(self) -> list[models.Position]:
        """The library's positions (IB pushes every change after the sync): no request
        goes to IB. A stock's long name comes from its contract details once known;
        unknown ones are looked up in the background for the next answer."""
        self.session.require_ready()
        pos = [p for p in self.ib.positions() if p.position]
        if any(p.contract.secType == "STK" and p.contract.conId not in self._details
               and p.contract.conId not in self._names_asked for p in pos):
            self.in_background(self._look_up_names())
        return [models.Position(account=p.account, **contract_ref(p.contract),
                                position=p.position, avgCost=p.avgCost,
                                longName=self.long_name(p.contract.conId))
                for p in pos]

    async def _look_up_names(self) -> None:
        """Contract details (long names) of stock positions not yet known, at
        background priority, once per conId and connection."""
        for p in list(self.ib.positions()):
            c = p.contract
            if not p.position or c.secType != "STK" or c.conId in self._details or \
                    c.conId in self._names_asked:
                continue
            self._names_asked.add(c.conId)
            try:
                cds = await self.details(ContractSpec(conId=c.conId, secType="STK",
                                                      exchange="", currency=""),
                                         priority=BACKGROUND)
                self._details[c.conId] = cds[0]
            except IbhostError as e:
                log.info("no details for position conId %s: %s", c.conId, e.message)

    def long_name(self, con_id: int) -> str | None:
        """The contract's long name, when its details were already looked up."""
        cd = self._details.get(con_id)
        return (cd.longName or None) if cd is not None else None


def _count(v: Any) -> int | None:
    n = _num(v)
    return None if n is None else int(n)
