"""``GET /v1/stream/ws``: one WebSocket, many subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from ...errors import IbhostError, bad_request
from ..common import auth, caller_of
from ..cors import ORIGINS_KEY
from ..keys import CONFIG_KEY
from .broker import BROKER_KEY, Broker
from .consumer import Consumer
from .pump import abort_later, pump_events
from .query import stream_list, summary


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
    c.on_slow = abort_later(request)
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
            await pump_events(c, broker, cfg.heartbeat, send, fmt, None)
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
    return {"type": "subscribed", "streams": [summary(h) for h in held],
            "orders": bool(c.orders), "seq": broker.seq}
