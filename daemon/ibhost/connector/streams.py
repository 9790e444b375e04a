"""Live streams: one IB subscription per (contract, kind, parameters), however many
consumers, published once on the stream channel of connector.sock.

- A *channel* is one long ``GET /stream`` answer (NDJSON); the gateway holds one and
  fans out to its consumers. Every update is encoded once and queued to each channel
  (normally exactly one): no per-consumer work here.
- A *hold* is a channel's claim on a subscription (``POST /streams``). The last hold
  released (or its channel gone) cancels the subscription at IB after ``linger``
  seconds, so a consumer that reconnects at once finds it still running.
- Market-data lines are budgeted: a quote stream costs one line, and
  ``snapshot_lines`` stay free for snapshots; a stream past the budget is refused
  with ``line_budget`` (429), so IB's error 101 never happens.
- After a reconnect, 1101 or a data farm's recovery every live subscription is
  re-requested; consumers see ``stale`` when data stops and ``resumed`` (with the
  gap) when it flows again. A stream silent for ``stale_after`` seconds while its
  market is open is marked stale and re-requested.
- Live-updating bars resume after a reconnect from the last complete bar sent: no
  duplicate and no missing bar at the seam.
- Order events (status, execution, commission) are journalled with a sequence
  number before they are sent; after every connect the connector reconciles with
  IB's executions and publishes what happened while it was away, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import orjson

from .. import calendars, ibrules
from ..errors import IbhostError, bad_request
from .contracts import ContractSpec
from .journal import OrderJournal, order_key
from .pacing import PaceKey
from .session import USABLE, State
from .values import _greek, _num, _quote

if TYPE_CHECKING:
    from ..config import Config
    from .service import Service

log = logging.getLogger("ibhost.connector.streams")

KINDS = ("quote", "bars", "rtbars", "ticks", "pnl")
LINE_KINDS = ("quote", "rtbars", "ticks")  # each holds a market-data line at IB
TICK_TYPES = ("Last", "AllLast", "BidAsk", "MidPoint")
REST = "rest"  # the holder of subscriptions made with POST /subscriptions
BROKEN_FARMS = {2103: "market_data", 2105: "historical", 2157: "secdef"}
FARM_OK = {2104: "market_data", 2106: "historical", 2158: "secdef"}
_FARM_KINDS = {"market_data": ("quote", "rtbars", "ticks"), "historical": ("bars",)}
CHANNEL_QUEUE = 100_000  # lines a channel may have unsent before it is closed
_MARKET_KIND = {"STK": "equity", "OPT": "equity", "ETF": "equity", "IND": "equity",
                "FUT": "future", "FOP": "future", "CASH": "fx"}


@dataclass
class LiveSub:
    key: str
    kind: str
    contract: Any
    params: dict[str, Any]
    holders: set[str] = field(default_factory=set)
    handle: Any = None  # the ib_async Ticker, BarDataList or RealTimeBarList
    started: float = field(default_factory=time.monotonic)
    last_update: float = field(default_factory=time.monotonic)
    updates: int = 0
    last_bar: dt.datetime | None = None  # the last complete bar sent
    last_event: dict[str, Any] | None = None
    stale: str | None = None  # why, while stale
    stale_since: float = 0.0
    resubscribed: int = 0
    linger: asyncio.TimerHandle | None = None

    def describe(self) -> dict[str, Any]:
        c = self.contract
        return {"key": self.key, "kind": self.kind, "conId": c.conId, "symbol": c.symbol,
                "secType": c.secType, "localSymbol": c.localSymbol, **self.params,
                "holders": len(self.holders), "updates": self.updates,
                "secondsSinceUpdate": round(time.monotonic() - self.last_update, 3),
                "stale": self.stale, "resubscribed": self.resubscribed,
                "lingering": self.linger is not None}


class Channel:
    """One ``GET /stream`` answer being written."""

    def __init__(self) -> None:
        self.id = "ch-" + uuid.uuid4().hex[:12]
        self.queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue(CHANNEL_QUEUE)
        self.closed: str | None = None
        self.wake = asyncio.Event()

    def put(self, seq: int, line: bytes) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait((seq, line))
        except asyncio.QueueFull:
            self.closed = f"channel too slow: {CHANNEL_QUEUE} lines unsent"
            self.wake.set()


class StreamCollector:
    """The hub's figures for /metrics, read at scrape time."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        h = self.hub
        lines = h.lines()
        yield GaugeMetricFamily("ibhost_stream_lines_used", "market-data lines held by "
                                "quote streams", value=lines["used"])
        yield GaugeMetricFamily("ibhost_stream_line_budget", "market-data lines quote "
                                "streams may hold", value=lines["budget"])
        subs = GaugeMetricFamily("ibhost_stream_subscriptions", "live subscriptions held "
                                 "at IB", labels=["kind"])
        stale = GaugeMetricFamily("ibhost_stream_stale", "live subscriptions marked "
                                  "stale (no data)", labels=["kind"])
        for kind in KINDS:
            subs.add_metric([kind], sum(1 for x in h.subs.values() if x.kind == kind))
            stale.add_metric([kind], sum(1 for x in h.subs.values()
                                         if x.kind == kind and x.stale is not None))
        yield subs
        yield stale
        yield GaugeMetricFamily("ibhost_stream_channels", "open stream channels (one per "
                                "gateway)", value=len(h.channels))
        upd = CounterMetricFamily("ibhost_stream_updates", "updates received from IB and "
                                  "published", labels=["kind"])
        for kind, n in h.updates_in.items():
            upd.add_metric([kind], n)
        yield upd
        res = CounterMetricFamily("ibhost_stream_resubscriptions", "live subscriptions "
                                  "re-requested", labels=["cause"])
        for cause in ("reconnect", "farm", "silent"):
            res.add_metric([cause], h.resubscriptions.get(cause, 0))
        yield res
        yield CounterMetricFamily("ibhost_stream_refused", "streams refused by the line "
                                  "budget", value=h.refused)
        yield GaugeMetricFamily("ibhost_stream_order_seq", "sequence number of the newest "
                                "order event", value=h.journal.seq)


class _AccountWide:
    """The "contract" of an account-wide P&L stream."""

    conId = 0
    symbol = ""
    secType = ""
    localSymbol = ""
    exchange = ""


class _FillOnly:
    """A fill whose order IB no longer lists (another client's, or closed before the
    connection was back): the order fields that the execution itself carries."""

    def __init__(self, fill: Any) -> None:
        e = fill.execution
        self.contract = fill.contract
        self.order = SimpleNamespace(orderId=e.orderId, permId=e.permId,
                                     clientId=e.clientId, orderRef=e.orderRef,
                                     action="BUY" if e.side == "BOT" else "SELL",
                                     totalQuantity=None, orderType=None)
        self.orderStatus = SimpleNamespace(status="Filled" if e.cumQty else "",
                                           permId=e.permId, filled=e.cumQty,
                                           remaining=None, avgFillPrice=e.avgPrice)


def _iso(t: Any) -> str | None:
    if t is None:
        return None
    if isinstance(t, dt.datetime):
        return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(t, dt.date):
        return t.isoformat()
    return str(t)


def _duration(bar: int) -> str:
    """History asked with a live-updating bar request: 200 bars, enough to close the
    seam after a long outage."""
    seconds = bar * 200
    if seconds <= 86400:
        return f"{max(seconds, 1800)} S"
    return f"{min(365, -(-seconds // 86400))} D"


class StreamHub:
    def __init__(self, svc: Service, cfg: Config) -> None:
        self.svc = svc
        self.ib = svc.ib
        self.session = svc.session
        s = cfg.streams
        self.linger = s.linger
        self.budget = s.market_data_lines - s.snapshot_lines
        # IB: simultaneous tick-by-tick streams as market depth, 1 per 100 lines, 3..60
        self.tick_cap = max(3, min(60, s.market_data_lines // 100))
        self.stale_after = s.stale_after
        self.channels: dict[str, Channel] = {}
        self.subs: dict[str, LiveSub] = {}
        self._starting: dict[str, asyncio.Future[LiveSub]] = {}
        self._by_handle: dict[int, list[LiveSub]] = {}  # one Ticker may serve two
        self._broken_farms: set[str] = set()
        self.journal = OrderJournal(Path(cfg.path(s.journal_file)), keep=s.journal_keep)
        # counters for /metrics
        self.updates_in: dict[str, int] = {"quote": 0, "bar": 0, "tick": 0, "order": 0,
                                           "pnl": 0, "account": 0}
        self.published = 0
        self.resubscriptions: dict[str, int] = {}
        self.refused = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watch: asyncio.Task[None] | None = None
        ib = self.ib
        ib.pendingTickersEvent += self._on_tickers
        ib.barUpdateEvent += self._on_bar_update
        ib.orderStatusEvent += self._on_order_status
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission
        ib.pnlEvent += self._on_pnl
        ib.pnlSingleEvent += self._on_pnl
        ib.positionEvent += self._on_position
        ib.accountValueEvent += self._on_account_value
        self.session.on_resubscribe.append(self._on_connected)
        self.session.on_ib_code.append(self._on_code)
        self.session.listeners.append(self._on_state)
        self.collector = StreamCollector(self)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._watch is None and self.stale_after > 0:
            self._watch = asyncio.get_running_loop().create_task(self._watch_stale())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for t in list(self._tasks):
            t.cancel()
        for ch in self.channels.values():
            ch.closed = "the connector is stopping"
            ch.wake.set()
        self.journal.close()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # --- channels ----------------------------------------------------------------------

    def open_channel(self) -> Channel:
        ch = Channel()
        self.channels[ch.id] = ch
        return ch

    def close_channel(self, ch: Channel) -> None:
        self.channels.pop(ch.id, None)
        for sub in list(self.subs.values()):
            if ch.id in sub.holders:
                self._release(sub, ch.id)

    def hello(self, ch: Channel) -> bytes:
        return orjson.dumps({"type": "hello", "channel": ch.id, "seq": self.journal.seq,
                             "firstSeq": self.journal.first,
                             "lines": self.lines()})

    def _publish(self, ev: dict[str, Any], seq: int = 0) -> None:
        line = orjson.dumps(ev)
        self._send(seq, line)

    def _send(self, seq: int, line: bytes) -> None:
        self.published += 1
        for ch in self.channels.values():
            ch.put(seq, line)
            ch.wake.set()

    # --- holds -------------------------------------------------------------------------

    def lines(self) -> dict[str, Any]:
        used = sum(1 for s in self.subs.values() if s.kind in LINE_KINDS)
        ticks = sum(1 for s in self.subs.values() if s.kind == "ticks")
        return {"used": used, "budget": self.budget, "tickByTick": ticks,
                "tickByTickMax": self.tick_cap}

    def _key(self, kind: str, c: Any, params: dict[str, Any]) -> str:
        if kind == "quote":
            return f"quote:{c.conId}:{params['generic']}"
        if kind == "rtbars":
            return f"rtbars:{c.conId}:{params['whatToShow']}:{int(params['useRTH'])}"
        if kind == "ticks":
            return f"ticks:{c.conId}:{params['tickType']}"
        if kind == "pnl":
            return f"pnl:{params['account']}:{params['model']}:{params['conId']}"
        return (f"bars:{c.conId}:{params['barSize']}:{params['whatToShow']}:"
                f"{int(params['useRTH'])}")

    async def hold(self, channel: str, kind: str, spec: ContractSpec | None,
                   params: dict[str, Any]) -> dict[str, Any]:
        if channel not in self.channels and channel != REST:
            raise IbhostError("not_found", f"no stream channel {channel!r} (open GET "
                              f"/stream first)", field="channel")
        if kind not in KINDS:
            raise bad_request("kind", f"must be one of {', '.join(KINDS)}")
        params = self._params(kind, params)
        if spec is None:  # an account-wide P&L stream
            c: Any = _AccountWide()
        else:
            c = await self.svc.resolve(spec)
            if kind == "pnl":
                params["conId"] = c.conId
        key = self._key(kind, c, params)
        sub = self.subs.get(key)
        if sub is None:
            starting = self._starting.get(key)
            if starting is None:
                fut: asyncio.Future[LiveSub] = asyncio.get_running_loop().create_future()
                self._starting[key] = fut
                try:
                    sub = await self._start(key, kind, c, params)
                    fut.set_result(sub)
                except BaseException as e:
                    fut.set_exception(e)
                    fut.exception()  # retrieved: the waiters re-raise it
                    raise
                finally:
                    self._starting.pop(key, None)
            else:
                sub = await asyncio.shield(starting)
        if channel != REST and channel not in self.channels:  # gone while starting
            if not sub.holders:
                self._release(sub, channel)
            raise IbhostError("not_found", f"stream channel {channel!r} closed",
                              field="channel")
        sub.holders.add(channel)
        if sub.linger is not None:
            sub.linger.cancel()
            sub.linger = None
        return {**sub.describe(), "last": sub.last_event, "lines": self.lines()}

    def _params(self, kind: str, p: dict[str, Any]) -> dict[str, Any]:
        if kind == "quote":
            return {"generic": ",".join(str(g) for g in p.get("generic") or ())}
        if kind == "pnl":
            con_id = int(p.get("conId") or 0)
            return {"account": self.svc.account.account(str(p.get("account") or "")),
                    "model": str(p.get("model") or ""), "conId": con_id}
        if kind == "ticks":
            tick_type = str(p.get("tickType") or "Last")
            if tick_type not in TICK_TYPES:
                raise bad_request("tickType", f"must be one of {', '.join(TICK_TYPES)}")
            return {"tickType": tick_type}
        if kind == "rtbars":
            bar_size = "5 secs"  # IB's real-time bars come in one size
        else:
            bar_size = str(p.get("barSize") or "1 min")
            bar = ibrules.bar_seconds(bar_size)
            if bar is None or bar < 60:
                raise bad_request("barSize", "live-updating bars are 1 min or larger "
                                  "(IB's keepUpToDate), e.g. '1 min', '5 mins', '1 hour'")
        what = str(p.get("whatToShow") or "TRADES").upper()
        if what not in ("TRADES", "MIDPOINT", "BID", "ASK"):
            raise bad_request("whatToShow", "must be TRADES, MIDPOINT, BID or ASK")
        return {"barSize": bar_size, "whatToShow": what, "useRTH": bool(p.get("useRTH"))}

    async def _start(self, key: str, kind: str, c: Any, params: dict[str, Any]) -> LiveSub:
        if kind in LINE_KINDS:
            lines = self.lines()
            if kind == "ticks" and lines["tickByTick"] >= self.tick_cap:
                self.refused += 1
                raise IbhostError(
                    "line_budget", f"tick-by-tick streams are at IB's limit of "
                    f"{self.tick_cap} (1 per 100 market-data lines, at least 3): "
                    + ", ".join(x.key for x in self.subs.values() if x.kind == "ticks"),
                    extra={"budget": self.tick_cap, "used": lines["tickByTick"],
                           "holders": [x.key for x in self.subs.values()
                                       if x.kind == "ticks"]})
            if lines["used"] >= self.budget:
                self.refused += 1
                held = sorted(self.subs.values(), key=lambda s: -len(s.holders))
                raise IbhostError(
                    "line_budget",
                    f"market-data line budget reached: {lines['used']} of "
                    f"{self.budget} lines hold live streams (streams.market_data_lines "
                    f"less streams.snapshot_lines); most held: "
                    + ", ".join(f"{s.contract.symbol} ({len(s.holders)})"
                                for s in held[:5]),
                    extra={"budget": self.budget, "used": lines["used"],
                           "holders": [s.key for s in held[:20]]})
        sub = LiveSub(key, kind, c, params)
        await self._request(sub)
        self.subs[key] = sub
        return sub

    async def _request(self, sub: LiveSub) -> None:
        c, p = sub.contract, sub.params
        if sub.kind == "quote":
            async def go() -> Any:
                return self.ib.reqMktData(c, p["generic"], False, False)

            sub.handle = await self.svc._call(f"stream quote {c.symbol}", go)
        elif sub.kind == "ticks":
            async def ticks() -> Any:
                return self.ib.reqTickByTickData(c, p["tickType"], 0, False)

            sub.handle = await self.svc._call(f"stream ticks {c.symbol}", ticks)
        elif sub.kind == "pnl":
            acct, model, con_id = p["account"], p["model"], p["conId"]

            async def pnl() -> Any:
                return (self.ib.reqPnLSingle(acct, model, con_id) if con_id
                        else self.ib.reqPnL(acct, model))

            # one subscription per account and model at IB: /pnl's one-off asks take
            # the same lock, and answer from this one while it is held
            async with self.svc.account._pnl_lock:
                sub.handle = await self.svc._call(f"stream pnl {acct}", pnl)
        elif sub.kind == "rtbars":
            # IB counts real-time bars as small bars: its hard pacing rules apply
            key = PaceKey(("stream-rtbars", sub.key, time.monotonic()),
                          (c.conId, c.exchange, p["whatToShow"]), 1, hard=True)

            async def rtbars() -> Any:
                return self.ib.reqRealTimeBars(c, 5, p["whatToShow"], p["useRTH"])

            sub.handle = await self.svc._call(f"stream real-time bars {c.symbol}", rtbars,
                                              key=key)
        else:
            bar = ibrules.bar_seconds(p["barSize"]) or 60
            key = PaceKey(("stream-bars", sub.key, time.monotonic()),
                          (c.conId, c.exchange, p["whatToShow"]), 1, hard=False)

            async def bars() -> Any:
                return await self.ib.reqHistoricalDataAsync(
                    c, "", _duration(bar), p["barSize"], p["whatToShow"], p["useRTH"],
                    formatDate=2, keepUpToDate=True)

            sub.handle = await self.svc._call(f"stream bars {c.symbol} {p['barSize']}",
                                              bars, key=key, small=False)
            if sub.stale is not None:  # data again: say so before the seam's bars
                self._fresh(sub)
            self._bars_arrived(sub, sub.handle)
        self._by_handle.setdefault(id(sub.handle), []).append(sub)
        sub.last_update = time.monotonic()
        if sub.kind == "pnl" and (_num(sub.handle.dailyPnL) is not None
                                  or _num(sub.handle.unrealizedPnL) is not None):
            self._on_pnl(sub.handle)  # IB's first answer came before it was known here

    def release(self, channel: str, key: str) -> None:
        sub = self.subs.get(key)
        if sub is None or channel not in sub.holders:
            raise IbhostError("not_found", f"channel {channel!r} holds no stream {key!r}",
                              field="key")
        self._release(sub, channel)

    def _release(self, sub: LiveSub, channel: str) -> None:
        sub.holders.discard(channel)
        if sub.holders or sub.linger is not None:
            return
        loop = asyncio.get_running_loop()
        if self.linger <= 0:
            self._cancel(sub)
        else:
            sub.linger = loop.call_later(self.linger, self._cancel, sub)

    def _cancel(self, sub: LiveSub) -> None:
        sub.linger = None
        if sub.holders or self.subs.get(sub.key) is not sub:
            return
        del self.subs[sub.key]
        self._forget_handle(sub)
        self._cancel_at_ib(sub)
        log.info("stream %s cancelled at IB (no consumer left)", sub.key)

    def _forget_handle(self, sub: LiveSub) -> None:
        subs = self._by_handle.get(id(sub.handle))
        if subs is not None:
            if sub in subs:
                subs.remove(sub)
            if not subs:
                del self._by_handle[id(sub.handle)]

    def _cancel_at_ib(self, sub: LiveSub) -> None:
        if not self.session.usable or sub.handle is None:
            return
        try:
            if sub.kind == "quote":
                self.ib.cancelMktData(sub.contract)
            elif sub.kind == "ticks":
                self.ib.cancelTickByTickData(sub.contract, sub.params["tickType"])
            elif sub.kind == "rtbars":
                self.ib.cancelRealTimeBars(sub.handle)
            elif sub.kind == "pnl":
                p = sub.params
                if p["conId"]:
                    self.ib.cancelPnLSingle(p["account"], p["model"], p["conId"])
                else:
                    self.ib.cancelPnL(p["account"], p["model"])
            else:
                self.ib.cancelHistoricalData(sub.handle)
        except Exception:  # the handle may belong to a dropped connection
            log.debug("cancel of %s failed", sub.key, exc_info=True)

    def describe(self) -> list[dict[str, Any]]:
        return [s.describe() for s in self.subs.values()]

    # --- market data in ----------------------------------------------------------------

    def _fresh(self, sub: LiveSub) -> None:
        now = time.monotonic()
        if sub.stale is not None:
            self._publish({"type": "status", "key": sub.key, "state": "resumed",
                           "cause": sub.stale,
                           "gapSeconds": round(now - sub.stale_since, 3)})
            sub.stale = None
        sub.last_update = now
        sub.updates += 1

    def _on_tickers(self, tickers: Any) -> None:
        for t in tickers:
            for sub in self._by_handle.get(id(t), ()):
                if sub.kind == "quote":
                    self._fresh(sub)
                    self.updates_in["quote"] += 1
                    ev = self._quote(sub, t)
                    sub.last_event = ev
                    self._publish(ev)
                elif t.tickByTicks:
                    self._fresh(sub)
                    for tick in t.tickByTicks:
                        self.updates_in["tick"] += 1
                        ev = self._tick(sub, tick)
                        sub.last_event = ev
                        self._publish(ev)

    def _quote(self, sub: LiveSub, t: Any) -> dict[str, Any]:
        c = sub.contract
        ev = {"type": "quote", "key": sub.key, "conId": c.conId, "symbol": c.symbol,
              "localSymbol": c.localSymbol, "bid": _quote(t.bid), "ask": _quote(t.ask),
              "last": _quote(t.last), "bidSize": _num(t.bidSize),
              "askSize": _num(t.askSize), "lastSize": _num(t.lastSize),
              "volume": _num(t.volume), "time": _iso(t.time)}
        g = t.modelGreeks
        if g is not None:
            ev["greeks"] = {k: _greek(k, getattr(g, k, None)) for k in (
                "impliedVol", "delta", "gamma", "vega", "theta", "undPrice")}
        return ev

    def _tick(self, sub: LiveSub, tick: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {"type": "tick", "key": sub.key, "conId": sub.contract.conId,
                              "symbol": sub.contract.symbol,
                              "tickType": sub.params["tickType"], "time": _iso(tick.time)}
        for f in ("price", "size", "exchange", "bidPrice", "askPrice", "bidSize",
                  "askSize", "midPoint"):
            v = getattr(tick, f, None)
            if v is not None:
                ev[f] = v if isinstance(v, str) else _num(v)
        return ev

    def _rt_bar_event(self, sub: LiveSub, b: Any) -> dict[str, Any]:
        return {"type": "bar", "key": sub.key, "conId": sub.contract.conId,
                "symbol": sub.contract.symbol, "barSize": "5 secs", "time": _iso(b.time),
                "open": b.open_, "high": b.high, "low": b.low, "close": b.close,
                "volume": _num(b.volume), "wap": _num(b.wap), "count": b.count,
                "complete": True}

    def _bar_event(self, sub: LiveSub, b: Any, complete: bool) -> dict[str, Any]:
        return {"type": "bar" if complete else "barUpdate", "key": sub.key,
                "conId": sub.contract.conId, "symbol": sub.contract.symbol,
                "barSize": sub.params["barSize"], "time": _iso(b.date),
                "open": b.open, "high": b.high, "low": b.low, "close": b.close,
                "volume": _num(b.volume), "complete": complete}

    def _bars_arrived(self, sub: LiveSub, bars: Any) -> None:
        """A (re-)request's history: send the complete bars after the last one sent
        (none the first time: a new stream starts with what comes next)."""
        if len(bars) < 2:
            return
        done = bars[:-1]
        if sub.last_bar is None:
            sub.last_bar = done[-1].date
            sub.last_event = self._bar_event(sub, done[-1], True)
            return
        for b in done:
            if b.date > sub.last_bar:
                self._emit_bar(sub, b)

    def _emit_bar(self, sub: LiveSub, b: Any) -> None:
        ev = self._bar_event(sub, b, True)
        sub.last_bar = b.date
        sub.last_event = ev
        self.updates_in["bar"] += 1
        self._publish(ev)

    def _on_bar_update(self, bars: Any, has_new_bar: bool) -> None:
        subs = self._by_handle.get(id(bars))
        if not subs:
            return
        sub = subs[0]
        self._fresh(sub)
        if sub.kind == "rtbars":
            if bars:
                ev = self._rt_bar_event(sub, bars[-1])
                sub.last_event = ev
                self.updates_in["bar"] += 1
                self._publish(ev)
            return
        if has_new_bar and len(bars) >= 2:
            for b in bars[:-1][-3:]:  # normally one; more after a pause
                if sub.last_bar is None or b.date > sub.last_bar:
                    self._emit_bar(sub, b)
        if bars:
            self._publish(self._bar_event(sub, bars[-1], False))

    # --- account: P&L, positions, account values -------------------------------------

    def _on_pnl(self, obj: Any) -> None:
        for sub in self._by_handle.get(id(obj), ()):
            self._fresh(sub)
            p = sub.params
            ev: dict[str, Any] = {
                "type": "pnl", "key": sub.key, "account": p["account"],
                "modelCode": p["model"], "dailyPnL": _num(obj.dailyPnL),
                "unrealizedPnL": _num(obj.unrealizedPnL),
                "realizedPnL": _num(obj.realizedPnL)}
            if p["conId"]:
                ev.update(conId=p["conId"], symbol=sub.contract.symbol,
                          position=_num(obj.position), value=_num(obj.value))
            sub.last_event = ev
            self.updates_in["pnl"] = self.updates_in.get("pnl", 0) + 1
            self._publish(ev)

    def held_pnl(self, account: str, model: str, con_id: int) -> dict[str, Any] | None:
        """The newest P&L of a held P&L stream (so /pnl need not ask IB again)."""
        sub = self.subs.get(f"pnl:{account}:{model}:{con_id}")
        return None if sub is None else sub.last_event

    def _on_position(self, pos: Any) -> None:
        c = pos.contract
        self.updates_in["account"] = self.updates_in.get("account", 0) + 1
        self._publish({"type": "position", "key": f"position:{pos.account}:{c.conId}",
                       "account": pos.account, "conId": c.conId, "symbol": c.symbol,
                       "secType": c.secType, "localSymbol": c.localSymbol,
                       "position": _num(pos.position), "avgCost": _num(pos.avgCost)})

    def _on_account_value(self, v: Any) -> None:
        self.updates_in["account"] = self.updates_in.get("account", 0) + 1
        self._publish({"type": "accountValue",
                       "key": f"account:{v.account}:{v.tag}:{v.currency}",
                       "account": v.account, "tag": v.tag, "value": v.value,
                       "currency": v.currency or None, "modelCode": v.modelCode or None})

    # --- staleness and resubscription ---------------------------------------------------

    def _mark_stale(self, subs: Any, cause: str) -> None:
        now = time.monotonic()
        for sub in subs:
            if sub.stale is None:
                sub.stale = cause
                sub.stale_since = now
                self._publish({"type": "status", "key": sub.key, "state": "stale",
                               "cause": cause})

    def _on_state(self, old: State, new: State, reason: str) -> None:
        if old in USABLE and new not in USABLE:
            self._mark_stale(list(self.subs.values()), "disconnected")

    def _on_code(self, code: int) -> None:
        if code == 1100:
            self._mark_stale(list(self.subs.values()), "connectivity_lost")
        elif code in BROKEN_FARMS:
            farm = BROKEN_FARMS[code]
            self._broken_farms.add(farm)
            if farm != "secdef":
                self._mark_stale([s for s in self.subs.values()
                                  if s.kind in _FARM_KINDS[farm]], f"farm_{farm}")
        elif code in FARM_OK and FARM_OK[code] in self._broken_farms:
            farm = FARM_OK[code]
            self._broken_farms.discard(farm)
            if farm != "secdef":
                self._spawn(self.resubscribe(
                    "farm", [s for s in self.subs.values() if s.kind in _FARM_KINDS[farm]]))

    async def _on_connected(self) -> None:
        """After every connect (and 1101): re-request every live subscription, then
        reconcile orders and executions with IB."""
        self._broken_farms.clear()
        self.reconcile()
        await self.resubscribe("reconnect")

    async def resubscribe(self, cause: str, subs: list[LiveSub] | None = None) -> None:
        targets = list(self.subs.values()) if subs is None else subs
        if not targets:
            return
        if cause != "farm":  # after a farm's recovery a stream that flows is not stale
            self._mark_stale(targets, cause)
        log.info("re-requesting %s live stream(s): %s", len(targets), cause)
        for sub in targets:
            if self.subs.get(sub.key) is not sub:
                continue
            self._forget_handle(sub)
            self._cancel_at_ib(sub)
            sub.resubscribed += 1
            self.resubscriptions[cause] = self.resubscriptions.get(cause, 0) + 1
            try:
                await self._request(sub)
            except IbhostError as e:
                log.warning("re-request of %s failed: %s", sub.key, e)

    async def _watch_stale(self) -> None:
        period = max(0.2, min(5.0, self.stale_after / 4))
        while True:
            await asyncio.sleep(period)
            if not self.session.usable:
                continue
            now = time.monotonic()
            silent = [s for s in self.subs.values()
                      if s.stale is None and now - s.last_update > self.stale_after
                      and self._market_open(s)]
            if silent:
                self._spawn(self.resubscribe("silent", silent))

    def _market_open(self, sub: LiveSub) -> bool:
        if sub.kind == "pnl":  # P&L moves when it moves: never silent-stale
            return False
        kind = _MARKET_KIND.get(sub.contract.secType)
        if kind is None:
            return True
        t = int(self.svc.now().timestamp())
        try:
            return calendars.is_open(kind, t, bool(sub.params.get("useRTH")))
        except Exception:
            return True

    # --- orders ------------------------------------------------------------------------

    def _order(self, event: str, trade: Any, **extra: Any) -> None:
        o, s, c = trade.order, trade.orderStatus, trade.contract
        ev = {"type": "order", "event": event, "orderId": o.orderId,
              "permId": o.permId or s.permId, "clientId": o.clientId,
              "orderRef": o.orderRef or None, "symbol": c.symbol, "conId": c.conId,
              "secType": c.secType, "localSymbol": c.localSymbol, "action": o.action,
              "quantity": _num(o.totalQuantity), "orderType": o.orderType,
              "status": s.status, "filled": _num(s.filled) or 0.0,
              "remaining": _num(s.remaining), "avgFillPrice": _num(s.avgFillPrice),
              "time": dt.datetime.now(dt.UTC).isoformat(), **extra}
        self.updates_in["order"] += 1
        seq, line = self.journal.append(ev)
        self._send(seq, line)

    def _on_order_status(self, trade: Any) -> None:
        s = trade.orderStatus
        key = order_key({"permId": trade.order.permId or s.permId,
                         "clientId": trade.order.clientId, "orderId": trade.order.orderId})
        now = (s.status, float(s.filled or 0))
        if self.journal.last_status.get(key) == now:
            return
        self._order("status", trade)

    def _fill_fields(self, fill: Any) -> dict[str, Any]:
        e = fill.execution
        return {"execId": e.execId, "side": e.side, "shares": _num(e.shares),
                "price": _num(e.price), "exchange": e.exchange,
                "execTime": _iso(e.time), "cumQty": _num(e.cumQty)}

    def _on_exec(self, trade: Any, fill: Any, *, reconciled: bool = False) -> None:
        e = fill.execution
        if e.execId in self.journal.exec_seen:
            return
        self._order("execution", trade, **self._fill_fields(fill),
                    **({"reconciled": True} if reconciled else {}))

    def _on_commission(self, trade: Any, fill: Any, report: Any, *,
                       reconciled: bool = False) -> None:
        exec_id = fill.execution.execId
        if exec_id not in self.journal.exec_seen:  # a fill learnt at sync: execution first
            self._on_exec(trade, fill, reconciled=True)
        if exec_id in self.journal.commission_seen:
            return
        self._order("commission", trade, execId=exec_id,
                    commission=_num(report.commission), currency=report.currency or None,
                    realizedPNL=_num(report.realizedPNL),
                    **({"reconciled": True} if reconciled else {}))

    def reconcile(self) -> int:
        """Publish, once, every execution (and its commission) and order state IB
        knows that the journal does not: what happened while the connector was away."""
        before = self.journal.seq
        trades = {t.order.permId: t for t in self.ib.trades() if t.order.permId}
        for fill in sorted(self.ib.fills(), key=lambda f: f.time):
            trade = trades.get(fill.execution.permId) or _FillOnly(fill)
            self._on_exec(trade, fill, reconciled=True)
            rep = fill.commissionReport
            if rep is not None and rep.execId:
                self._on_commission(trade, fill, rep, reconciled=True)
        for trade in trades.values():
            self._on_order_status(trade)
        n = self.journal.seq - before
        if n:
            log.info("reconciled with IB: %s order event(s) published", n)
        return n

    def journal_since(self, seq: int) -> Iterator[tuple[int, bytes]]:
        return self.journal.since(seq)


