"""Live streams to containers: Server-Sent Events and WebSocket, fanned out here.

The gateway keeps one stream channel open to the connector (``GET /stream`` on
connector.sock) and holds there one subscription per stream key while at least one
consumer wants it. Each consumer has its own bounded queue: quotes and partial bars
conflate (the latest per stream wins, counted), complete bars, status and order
events are never dropped; a consumer that falls ``streams.consumer_queue`` events
behind is closed with the reason. Events are relayed as the connector encoded them.

Order events carry the journal's sequence number: SSE sends it as the event id, so
a consumer that comes back with ``Last-Event-ID`` (or ``since``) gets what it missed,
from the connector's journal, even after this gateway was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from prometheus_client import Counter, Gauge, Histogram

from ..config import Config
from ..connector.client import ConnectorClient
from ..errors import IbhostError, bad_request
from ..ipc import KEYLESS, IpcError
from ..validate import bool_word
from .common import auth, caller_of, trusted
from .cors import ORIGINS_KEY
from .keys import CONFIG_KEY, METRICS_KEY

log = logging.getLogger("ibhost.gateway.streams")

CONFLATED = frozenset({"quote", "barUpdate", "pnl", "position", "accountValue"})
LATEST = frozenset({"quote", "bar", "tick", "pnl"})  # kept per stream for a new consumer
ACCOUNT_TYPES = ("position", "accountValue")  # for every consumer of portfolio=true
STREAM_TYPES = ("quote", "bar", "barUpdate", "tick", "pnl", "status")
CONTRACT_KEYS = ("symbol", "secType", "exchange", "primaryExchange", "currency", "conId",
                 "localSymbol", "lastTradeDateOrContractMonth", "strike", "right",
                 "multiplier", "tradingClass")
BAR_KEYS = ("barSize", "whatToShow", "useRTH", "tickType", "account", "model")


DIRECT_MAX = 64 * 1024  # bytes unsent in a consumer's socket before it goes on a queue


def ws_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed WebSocket text frame (the same bytes for every
    consumer: it is built once per event)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def sse_chunk(body: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%b\r\n" % (len(body), body) if chunked else body


class Consumer:
    """One SSE or WebSocket client: what it holds and what it has not read yet.

    While it keeps up, events are written straight to its socket, each encoded once
    for all consumers (``Broker._push``); when its socket has ``DIRECT_MAX`` bytes
    unsent, they queue here and its own task writes them as it drains."""

    def __init__(self, caller: str, limit: int, orders: bool = False) -> None:
        self.caller = caller
        self.limit = limit
        self.orders = orders
        self.keys: set[str] = set()
        self.latest: dict[str, tuple[str, bytes]] = {}  # conflated: key -> newest
        self.pending: deque[tuple[str, int, bytes]] = deque()  # (type, seq, line)
        self.wake = asyncio.Event()
        self.closed: str | None = None
        self.conflated = 0
        self.drained = 0  # events handed to the transport
        self.after_seq = -1  # order events at or below this were sent from the journal
        self.created = time.monotonic()
        self.on_slow: Any = None  # called once when closed for being too slow
        self.transport: Any = None  # set once the stream is open: direct writes
        self.wire = ""  # "ws", "sse" (chunked) or "sse-raw"
        self.via = "sse"  # the transport label for metrics
        self.out: list[bytes] = []  # direct writes of the current batch
        self.sending = False  # its own task is writing queued events

    def push(self, typ: str, key: str, seq: int, line: bytes) -> bool:
        """Queue one event; False when the consumer had to be closed (too far behind)."""
        if self.closed:
            return False
        if typ in CONFLATED:
            if key in self.latest:
                self.conflated += 1
            self.latest[key] = (typ, line)
        else:
            if typ == "order" and seq <= self.after_seq:
                return True
            self.pending.append((typ, seq, line))
            if len(self.pending) > self.limit:
                self.close(f"too slow: more than {self.limit} events unread "
                           f"(streams.consumer_queue)")
                if self.on_slow is not None:
                    self.on_slow()
                return False
        self.wake.set()
        return True

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
        self.wake.set()

    def direct(self) -> bool:
        t = self.transport
        return (t is not None and not self.pending and not self.latest and not self.sending
                and not self.closed and not t.is_closing()
                and t.get_write_buffer_size() < DIRECT_MAX)

    def drain(self) -> list[tuple[str, int, bytes]]:
        self.drained += len(self.pending) + len(self.latest)
        out = list(self.pending)
        self.pending.clear()
        if self.latest:
            out += [(typ, 0, line) for typ, line in self.latest.values()]
            self.latest.clear()
        self.wake.clear()
        return out


class StreamMetrics:
    def __init__(self, registry: Any) -> None:
        r = registry
        self.consumers = Gauge("ibhost_stream_consumers", "open stream consumers",
                               ["transport"], registry=r)
        self.streams = Gauge("ibhost_stream_keys", "streams held at the connector for "
                             "this gateway's consumers", registry=r)
        self.events_in = Counter("ibhost_stream_events_in_total", "events received from "
                                 "the connector", ["type"], registry=r)
        self.events_out = Counter("ibhost_stream_events_out_total", "events sent to "
                                  "consumers", ["type"], registry=r)
        self.conflated = Counter("ibhost_stream_conflated_total", "quote and partial-bar "
                                 "events replaced by a newer one before a consumer read "
                                 "them", registry=r)
        self.closed = Counter("ibhost_stream_consumers_closed_total", "consumers closed "
                              "by the gateway", ["reason"], registry=r)
        self.lag = Histogram("ibhost_stream_consumer_lag_events", "events waiting for a "
                             "consumer when it was woken",
                             buckets=(0, 1, 2, 5, 10, 50, 100, 500, 1000), registry=r)
        self.upstream = Gauge("ibhost_stream_channel_up", "1 while the stream channel to "
                              "the connector is open", registry=r)
        for t in ("quote", "bar", "barUpdate", "tick", "pnl", "position", "accountValue",
                  "status", "order"):
            self.events_in.labels(t)
            self.events_out.labels(t)
        for t in ("sse", "websocket"):
            self.consumers.labels(t)
        for reason in ("slow", "limit"):
            self.closed.labels(reason)


class Broker:
    """The one stream channel to the connector, and the consumers fed from it."""

    def __init__(self, cfg: Config, metrics_registry: Any) -> None:
        s = cfg.streams
        self.cfg = s
        # the channel: a line at least every 5 s (the connector's idle line)
        self.client = ConnectorClient(str(cfg.connector_socket), connect_timeout=2.0,
                                      read_timeout=20.0)
        self.rpc = ConnectorClient(str(cfg.connector_socket), connect_timeout=2.0,
                                   read_timeout=cfg.gateway.connector_timeout)
        self.channel: str | None = None
        self.ready = asyncio.Event()
        self.by_key: dict[str, set[Consumer]] = {}
        self.order_consumers: set[Consumer] = set()
        self.account_consumers: set[Consumer] = set()
        self.consumers: set[Consumer] = set()
        self.seq = 0  # the newest order event seen
        self.m = StreamMetrics(metrics_registry)
        self._task: asyncio.Task[None] | None = None
        self._specs: dict[str, dict[str, Any]] = {}  # stream key -> what to hold again
        self._dirty: set[Consumer] = set()  # consumers with direct writes to flush
        self._out: dict[str, int] = {}  # events written directly, by type, this read
        self._spec_keys: dict[bytes, str] = {}  # a stream's description -> its key
        self._answers: dict[str, dict[str, Any]] = {}  # key -> the connector's answer
        self._last: dict[str, dict[str, Any]] = {}  # key -> newest quote, bar or tick

    # --- the channel -------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for c in list(self.consumers):
            c.close("the gateway is stopping")
        await self.client.close()
        await self.rpc.close()

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self._read_channel()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except (IpcError, IbhostError, ConnectionError, ValueError) as e:
                log.debug("stream channel: %s", e)
            except Exception:
                log.exception("stream channel failed")
            self.channel = None
            self.ready.clear()
            self.m.upstream.set(0)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _read_channel(self) -> None:
        async for lines in self.client.stream_batches(self.seq):
            try:
                for line in lines:
                    await self._dispatch(line)
            finally:
                self._flush()

    def _flush(self) -> None:
        """Write what each keeping-up consumer got from one read: one send each."""
        dirty, self._dirty = self._dirty, set()
        if self._out:
            for typ, n in self._out.items():
                self.m.events_out.labels(typ).inc(n)
            self._out = {}
        for c in dirty:
            data, c.out = b"".join(c.out), []
            if c.transport is not None and not c.transport.is_closing():
                c.transport.write(data)

    async def _dispatch(self, line: bytes) -> None:
        ev = orjson.loads(line)
        typ = ev.get("type")
        if typ == "hello":
            await self._hello(ev)
        elif typ == "order":
            seq = int(ev["seq"])
            if seq <= self.seq:
                return
            self.seq = seq
            self.m.events_in.labels("order").inc()
            frames: dict[str, bytes] = {}
            for c in list(self.order_consumers):
                self._push(c, "order", "", seq, line, frames)
        elif typ in ACCOUNT_TYPES:
            self.m.events_in.labels(typ).inc()
            frames = {}
            for c in list(self.account_consumers):
                self._push(c, typ, ev["key"], 0, line, frames)
        elif typ in STREAM_TYPES:
            self.m.events_in.labels(typ).inc()
            if typ in LATEST:
                self._last[ev["key"]] = ev
            frames = {}
            for c in list(self.by_key.get(ev.get("key", ""), ())):
                self._push(c, typ, ev["key"], 0, line, frames)
        elif typ == "closed":
            raise ConnectionError(f"connector closed the channel: {ev.get('reason')}")

    async def _hello(self, ev: dict[str, Any]) -> None:
        self.channel = ev["channel"]
        if not self.seq:
            self.seq = int(ev.get("seq") or 0)
        self.m.upstream.set(1)
        # a new channel (a connector restart, or this gateway reconnecting): hold
        # again everything consumers still want
        for key in list(self.by_key):
            try:
                await self._hold_key(key)
            except IbhostError as e:
                log.warning("stream %s could not be held again: %s", key, e)
                for c in list(self.by_key.get(key, ())):
                    self._push(c, "status", key, 0, orjson.dumps(
                        {"type": "status", "key": key, "state": "failed",
                         "cause": e.code, "message": e.message}))
        self.ready.set()

    async def _hold_key(self, key: str) -> dict[str, Any]:
        assert self.channel is not None
        return await self.rpc.hold_stream(self.channel, self._specs[key])

    def _push(self, c: Consumer, typ: str, key: str, seq: int, line: bytes,
              frames: dict[str, bytes] | None = None) -> None:
        if frames is not None and c.direct():
            if typ == "order" and seq <= c.after_seq:
                return
            data = frames.get(c.wire)
            if data is None:
                data = frames[c.wire] = _encode(c.wire, typ, seq, line)
            c.out.append(data)
            c.drained += 1
            self._dirty.add(c)
            self._out[typ] = self._out.get(typ, 0) + 1  # counted once per read
            return
        if not c.push(typ, key, seq, line):
            self.m.closed.labels("slow").inc()
            self.remove(c)

    # --- consumers ---------------------------------------------------------------------

    def add(self, c: Consumer, transport: str) -> None:
        s = self.cfg
        if len(self.consumers) >= s.max_consumers:
            self.m.closed.labels("limit").inc()
            raise IbhostError("pacing", f"{s.max_consumers} streams are open, the most "
                              f"this gateway serves (streams.max_consumers)")
        mine = sum(1 for x in self.consumers if x.caller == c.caller)
        if mine >= s.max_consumers_per_key:
            self.m.closed.labels("limit").inc()
            who = "this API key" if c.caller != KEYLESS else "callers without a key"
            raise IbhostError("pacing", f"{mine} streams are open for {who}, the most "
                              f"allowed (streams.max_consumers_per_key)")
        self.consumers.add(c)
        c.via = transport
        self.m.consumers.labels(transport).inc()

    def remove(self, c: Consumer) -> None:
        if c not in self.consumers:
            return
        self.consumers.discard(c)
        self.order_consumers.discard(c)
        self.account_consumers.discard(c)
        self.m.consumers.labels(c.via).dec()
        for key in list(c.keys):
            self._drop_key(c, key)

    async def subscribe(self, c: Consumer, kind: str, body: dict[str, Any]
                        ) -> dict[str, Any]:
        """Hold the stream ``body`` describes for ``c``; the connector's answer (its key,
        the contract, the newest value) or its error (400, 404, 429 line_budget)."""
        if len(c.keys) >= self.cfg.max_subscriptions:
            raise IbhostError("pacing", f"a stream holds at most "
                              f"{self.cfg.max_subscriptions} subscriptions "
                              f"(streams.max_subscriptions)")
        try:
            await asyncio.wait_for(self.ready.wait(), 10.0)
        except TimeoutError:
            raise IbhostError("unavailable", "the connector's stream channel is not "
                              "open") from None
        spec = {k: body[k] for k in (*CONTRACT_KEYS, *BAR_KEYS, "genericTicks")
                if k in body and body[k] is not None}
        spec["kind"] = kind
        ck = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)
        key = self._spec_keys.get(ck)
        if key is not None and self.by_key.get(key):
            # held already for another consumer: no round trip to the connector
            answer = {**self._answers[key], "last": self._last.get(key)}
        else:
            assert self.channel is not None
            answer = await self.rpc.hold_stream(self.channel, spec)
            key = answer["key"]
            self._spec_keys[ck] = key
            self._answers[key] = {k: v for k, v in answer.items() if k != "last"}
            if answer.get("last"):
                self._last[key] = answer["last"]
        self._specs[key] = spec
        if c.closed or c not in self.consumers:
            self._maybe_release(key)
            return answer
        c.keys.add(key)
        self.by_key.setdefault(key, set()).add(c)
        self.m.streams.set(len(self.by_key))
        return answer

    def unsubscribe(self, c: Consumer, key: str) -> bool:
        if key not in c.keys:
            return False
        self._drop_key(c, key)
        return True

    def _drop_key(self, c: Consumer, key: str) -> None:
        c.keys.discard(key)
        c.latest.pop(key, None)
        holders = self.by_key.get(key)
        if holders is not None:
            holders.discard(c)
        self._maybe_release(key)

    def _maybe_release(self, key: str) -> None:
        if self.by_key.get(key):
            return
        self.by_key.pop(key, None)
        self._answers.pop(key, None)
        self._last.pop(key, None)
        self._spec_keys = {k: v for k, v in self._spec_keys.items() if v != key}
        self.m.streams.set(len(self.by_key))
        channel = self.channel
        if channel is None:
            return

        async def release() -> None:
            with contextlib.suppress(IpcError, IbhostError):
                await self.rpc.release_stream(channel, key)

        asyncio.get_running_loop().create_task(release())

    async def resume_orders(self, c: Consumer, since: int) -> list[tuple[int, bytes]]:
        """Journalled order events after ``since`` (sequence number and line, relayed
        as the connector wrote them), for a consumer that comes back; later ones
        arrive live (no event twice)."""
        self.order_consumers.add(c)
        c.orders = True
        out: list[tuple[int, bytes]] = []
        while True:
            page = await self.rpc.order_events(since, 1000)
            out += page
            if page:
                since = page[-1][0]
            if len(page) < 1000:
                break
        c.after_seq = since
        # events that arrived live while the journal was read are dropped as repeats
        c.pending = deque(e for e in c.pending if not (e[0] == "order" and e[1] <= since))
        return out


def _encode(wire: str, typ: str, seq: int, line: bytes) -> bytes:
    if wire == "ws":
        return ws_frame(line)
    return sse_chunk(_sse(typ, seq, line), wire == "sse")


BROKER_KEY = web.AppKey("streams", Broker)


# --- request parsing --------------------------------------------------------------------

def _symbols(raw: str, field: str) -> list[str]:
    out = [s.strip().upper() for s in raw.split(",") if s.strip()]
    if len(out) > 200:
        raise bad_request(field, "at most 200 symbols")
    return out


def _flag(q: Any, name: str) -> bool:
    v = q.get(name)
    if v is None:
        return False
    if v == "":  # named with no value (?orders): asked for
        return True
    b = bool_word(v)
    if b is None:
        raise bad_request(name, "must be true or false")
    return b


def _since(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("since")
    if raw is None or raw == "":
        return None
    field = "Last-Event-ID" if request.headers.get("Last-Event-ID") else "since"
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise bad_request(field, "must be an order event's sequence number (an integer)")
    return int(raw)


STREAM_FIELDS = (("quotes", "quote"), ("bars", "bars"), ("realtimeBars", "rtbars"),
                 ("ticks", "ticks"), ("pnl", "pnl"))  # a request's field -> stream kind


def stream_list(fields: Any, shared: dict[str, dict[str, Any]]
                ) -> list[tuple[str, dict[str, Any]]]:
    """The streams a request asks for, as (kind, body): per field of ``STREAM_FIELDS``
    a list of symbols (each with its kind's ``shared`` parameters) or contract
    objects (as they are); P&L items as ``_pnl_item`` reads them."""
    wants: list[tuple[str, dict[str, Any]]] = []
    for field, kind in STREAM_FIELDS:
        items = fields.get(field) or []
        if not isinstance(items, list):
            raise bad_request(field, "must be a list of symbols or contract objects")
        extra = shared.get(kind, {})
        for it in items:
            if isinstance(it, dict):
                wants.append((kind, it))
            elif kind == "pnl":
                wants.append((kind, _pnl_item(it, extra)))
            elif isinstance(it, str):
                wants.append((kind, {"symbol": it.upper(), **extra}))
            else:
                raise bad_request(field, "must be a list of symbols or contract objects")
    return wants


def _wants(request: web.Request) -> list[tuple[str, dict[str, Any]]]:
    """The streams of an SSE query: comma-separated symbols, parameters shared."""
    q = request.query
    symbols = {field: _symbols(q.get(field, ""), field) for field, _ in STREAM_FIELDS}
    sec = {"secType": q["secType"]} if q.get("secType") else {}
    what = q.get("whatToShow") or "TRADES"
    rth = _flag(q, "useRTH") if symbols["bars"] or symbols["realtimeBars"] else False
    return stream_list(symbols, {
        "quote": sec,
        "bars": {"barSize": q.get("barSize") or "1 min", "whatToShow": what,
                 "useRTH": rth, **sec},
        "rtbars": {"whatToShow": what, "useRTH": rth, **sec},
        "ticks": {"tickType": q.get("tickType") or "Last", **sec},
        "pnl": {"account": q["account"]} if q.get("account") else {}})


def _pnl_item(item: Any, acct: dict[str, Any]) -> dict[str, Any]:
    """``account`` (the account's P&L), a conId or a symbol (one position's)."""
    if isinstance(item, int) and not isinstance(item, bool):
        return {"conId": item, **acct}
    if isinstance(item, str):
        if item.upper() == "ACCOUNT":
            return dict(acct)
        if item.isdigit():
            return {"conId": int(item), **acct}
        return {"symbol": item.upper(), **acct}
    raise bad_request("pnl", "items are 'account', a conId or a symbol")


# --- Server-Sent Events -----------------------------------------------------------------

def _sse(typ: str, seq: int, line: bytes) -> bytes:
    head = b"id: %d\n" % seq if typ == "order" else b""
    return head + b"event: " + typ.encode() + b"\ndata: " + line + b"\n\n"


async def sse(request: web.Request) -> web.StreamResponse:
    """``GET /v1/stream?quotes=AAPL,MSFT&bars=AAPL&barSize=1 min&orders=true``: one
    event stream. Order events need an API key; ``Last-Event-ID`` resumes them."""
    broker = request.app[BROKER_KEY]
    orders = _flag(request.query, "orders")
    portfolio = _flag(request.query, "portfolio")
    since = _since(request)
    wants = _wants(request)
    if orders or portfolio or since is not None or any(k == "pnl" for k, _ in wants):
        auth(request, trading=True)  # order, account and P&L events always need a key
    else:
        auth(request)
    if not wants and not orders and not portfolio:
        raise bad_request("quotes", "name at least one stream: quotes=, bars=, "
                          "realtimeBars=, ticks=, pnl=, portfolio=true or orders=true")
    cfg = request.app[CONFIG_KEY].streams
    c = Consumer(caller_of(request), cfg.consumer_queue, orders)
    c.on_slow = _abort_later(request)
    broker.add(c, "sse")
    if portfolio:
        broker.account_consumers.add(c)
    resp: web.StreamResponse | None = None
    try:
        held = [await broker.subscribe(c, kind, body) for kind, body in wants]
        replay: list[tuple[int, bytes]] = []
        if orders:
            replay = await broker.resume_orders(c, since if since is not None
                                                else broker.seq)
        resp = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})
        resp.force_close()  # a stream's connection is never reused for another request
        await resp.prepare(request)
        first = [b"retry: 2000\n\n", _sse("subscribed", 0, orjson.dumps(
            {"type": "subscribed", "streams": [_summary(h) for h in held],
             "orders": orders, "seq": broker.seq}))]
        first += [_sse("order", seq, e) for seq, e in replay]
        first += [_sse(h["last"]["type"], 0, orjson.dumps(h["last"]))
                  for h in held if h.get("last")]
        await resp.write(b"".join(first))
        c.wire = "sse" if resp.headers.get("Transfer-Encoding") == "chunked" else "sse-raw"
        c.transport = request.transport
        await _pump(c, broker, cfg.heartbeat, lambda b: resp.write(b), _sse_batch,
                    b": keep-alive\n\n")
        if c.closed and c.closed != "client gone":
            await resp.write(_sse("closed", 0, orjson.dumps({"type": "closed",
                                                              "reason": c.closed})))
        return resp
    except ConnectionResetError:  # the consumer hung up: nothing to answer
        c.close("client gone")
        return resp if resp is not None else web.Response(status=204)
    except asyncio.CancelledError:
        c.close("client gone")
        raise
    finally:
        broker.remove(c)


SLOW_GRACE = 5.0  # seconds a consumer closed for being slow has to read why


def _abort_later(request: web.Request) -> Any:
    """A consumer closed for being too slow is told why when it next reads; one that
    still reads nothing ``SLOW_GRACE`` seconds later loses its connection."""
    def abort() -> None:
        t = request.transport
        if t is not None and not t.is_closing():
            t.abort()

    return lambda: asyncio.get_running_loop().call_later(SLOW_GRACE, abort)


def _sse_batch(items: list[tuple[str, int, bytes]]) -> bytes:
    return b"".join(_sse(t, s, line) for t, s, line in items)


def _summary(h: dict[str, Any]) -> dict[str, Any]:
    return {k: h.get(k) for k in ("key", "kind", "conId", "symbol", "secType",
                                  "localSymbol", "barSize", "whatToShow", "useRTH")
            if h.get(k) is not None}


async def _pump(c: Consumer, broker: Broker, heartbeat: float, write: Any, fmt: Any,
                idle: bytes | None) -> None:
    m = broker.m
    while not c.closed:
        try:
            await asyncio.wait_for(c.wake.wait(), heartbeat)
        except TimeoutError:
            if idle is not None:
                await write(idle)
            continue
        items = c.drain()
        if not items:
            continue
        m.lag.observe(len(items))
        if c.conflated:
            m.conflated.inc(c.conflated)
            c.conflated = 0
        for t, _, _ in items:
            m.events_out.labels(t).inc()
        c.sending = True  # no direct write may overtake these
        try:
            await write(fmt(items))
        finally:
            c.sending = False


# --- WebSocket --------------------------------------------------------------------------

def _origin_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser
    if origin in request.app[ORIGINS_KEY]:
        return True
    host = request.headers.get("Host", "")
    return origin in (f"http://{host}", f"https://{host}")


async def websocket(request: web.Request) -> web.StreamResponse:
    """``GET /v1/stream/ws``: one socket, many subscriptions. Send
    ``{"op": "subscribe", "quotes": ["AAPL"], "bars": [...], "orders": true}``,
    ``{"op": "unsubscribe", "keys": [...]}``; events arrive as JSON text frames."""
    if not _origin_ok(request):
        raise IbhostError("forbidden", f"origin {request.headers.get('Origin')!r} is not "
                          "in gateway.cors_origins", field="Origin")
    auth(request)
    broker = request.app[BROKER_KEY]
    cfg = request.app[CONFIG_KEY].streams
    c = Consumer(caller_of(request), cfg.consumer_queue)
    c.on_slow = _abort_later(request)
    broker.add(c, "websocket")
    # no compression: each event's frame is built once and written to every socket
    ws = web.WebSocketResponse(heartbeat=cfg.heartbeat, max_msg_size=1 << 16,
                               compress=False)
    try:
        await ws.prepare(request)
        c.wire = "ws"
        c.transport = request.transport

        async def send(b: bytes) -> None:
            await ws.send_str(b.decode())

        def fmt(items: list[tuple[str, int, bytes]]) -> bytes:
            return b"\n".join(line for _, _, line in items) if len(items) == 1 else \
                b"[" + b",".join(line for _, _, line in items) + b"]"

        async def pump() -> None:
            await _pump(c, broker, cfg.heartbeat, send, fmt, None)
            if c.closed and not ws.closed:  # closed here: say why, then end the socket
                with contextlib.suppress(ConnectionResetError):
                    await ws.send_str(orjson.dumps({"type": "closed",
                                                    "reason": c.closed}).decode())
                await ws.close(code=1008 if "slow" in c.closed else 1001,
                               message=c.closed[:120].encode())

        task = asyncio.get_running_loop().create_task(pump())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                reply = await _ws_command(request, broker, c, msg.data)
                await ws.send_str(orjson.dumps(reply).decode())
        finally:
            c.close("client gone")
            with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
                await task
        return ws
    finally:
        broker.remove(c)


async def _ws_command(request: web.Request, broker: Broker, c: Consumer, text: str
                      ) -> dict[str, Any]:
    try:
        try:
            cmd = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise bad_request("body", "each message must be a JSON object") from None
        if not isinstance(cmd, dict):
            raise bad_request("body", "each message must be a JSON object")
        op = cmd.get("op")
        if op == "subscribe":
            return await _ws_subscribe(request, broker, c, cmd)
        if op == "unsubscribe":
            keys = cmd.get("keys")
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise bad_request("keys", "must be a list of stream keys")
            return {"type": "unsubscribed",
                    "keys": [k for k in keys if broker.unsubscribe(c, k)]}
        raise bad_request("op", "must be subscribe or unsubscribe")
    except IbhostError as e:
        return {"type": "error", **e.to_dict()["error"]}


async def _ws_subscribe(request: web.Request, broker: Broker, c: Consumer,
                        cmd: dict[str, Any]) -> dict[str, Any]:
    wants = stream_list(cmd, {})
    orders = cmd.get("orders")
    if orders is not None and not isinstance(orders, bool):
        raise bad_request("orders", "must be true or false")
    portfolio = cmd.get("portfolio")
    if portfolio is not None and not isinstance(portfolio, bool):
        raise bad_request("portfolio", "must be true or false")
    if portfolio or any(k == "pnl" for k, _ in wants):
        auth(request, trading=True)  # account and P&L events always need a key
    if portfolio:
        broker.account_consumers.add(c)
    since = cmd.get("since")
    if since is not None and (not isinstance(since, int) or isinstance(since, bool)
                              or since < 0):
        raise bad_request("since", "must be an order event's sequence number")
    held = [await broker.subscribe(c, kind, body) for kind, body in wants]
    replay: list[tuple[int, bytes]] = []
    if orders:
        auth(request, trading=True)
        replay = await broker.resume_orders(c, since if since is not None else broker.seq)
    for h in held:
        if h.get("last"):
            c.push(h["last"]["type"], h["key"], 0, orjson.dumps(h["last"]))
    # the missed order events go before any that arrived live meanwhile (all later)
    c.pending.extendleft(("order", seq, e) for seq, e in reversed(replay))
    c.wake.set()
    return {"type": "subscribed", "streams": [_summary(h) for h in held],
            "orders": bool(c.orders), "seq": broker.seq}


async def streams_status(request: web.Request) -> web.Response:
    """What is held at the connector, for whom, and the line budget."""
    auth(request)
    broker = request.app[BROKER_KEY]
    answer = await broker.rpc.streams()
    if not trusted(request):  # P&L streams name the account: only with a key
        shown = [s for s in answer["streams"] if s.get("kind") != "pnl"]
        answer["hidden"] = len(answer["streams"]) - len(shown)
        answer["streams"] = shown
    answer["consumers"] = len(broker.consumers)
    answer["channelOpen"] = broker.ready.is_set()
    return web.json_response(answer)


async def broker_ctx(app: web.Application) -> AsyncIterator[None]:
    broker = app[BROKER_KEY]
    broker.start()
    yield
    await broker.stop()


async def close_consumers(app: web.Application) -> None:
    """On shutdown: end every stream (the server waits for open answers to end)."""
    for c in list(app[BROKER_KEY].consumers):
        c.close("the gateway is stopping")


def install(app: web.Application, cfg: Config) -> None:
    app[BROKER_KEY] = Broker(cfg, app[METRICS_KEY].registry)
    app.cleanup_ctx.append(broker_ctx)
    app.on_shutdown.append(close_consumers)
