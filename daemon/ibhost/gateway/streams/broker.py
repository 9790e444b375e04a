"""The one stream channel to the connector and the consumers fed from it: holds
at the connector, fan-out, resumption of order events, ``GET /v1/streams``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from ...config import Config
from ...connector.client import ConnectorClient
from ...errors import IbhostError
from ...ipc import KEYLESS, IpcError
from ..common import auth, trusted
from ..keys import METRICS_KEY
from .consumer import Consumer, encode
from .metrics import StreamMetrics

log = logging.getLogger("ibhost.gateway.streams")

LATEST = frozenset({"quote", "bar", "tick", "pnl"})  # kept per stream for a new consumer
ACCOUNT_TYPES = ("position", "accountValue")  # for every consumer of portfolio=true
STREAM_TYPES = ("quote", "bar", "barUpdate", "tick", "pnl", "status")
CONTRACT_KEYS = ("symbol", "secType", "exchange", "primaryExchange", "currency", "conId",
                 "localSymbol", "lastTradeDateOrContractMonth", "strike", "right",
                 "multiplier", "tradingClass")
BAR_KEYS = ("barSize", "whatToShow", "useRTH", "tickType", "account", "model")


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
                data = frames[c.wire] = encode(c.wire, typ, seq, line)
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
            async with asyncio.timeout(10.0):
                await self.ready.wait()
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


BROKER_KEY = web.AppKey("streams", Broker)


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
