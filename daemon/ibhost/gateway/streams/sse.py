"""``GET /v1/stream``: live events as Server-Sent Events."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from ...errors import bad_request
from ..common import auth, caller_of
from ..keys import CONFIG_KEY
from .broker import BROKER_KEY
from .consumer import Consumer, sse_event
from .pump import abort_later, pump_events
from .query import flag, since_of, sse_wants, summary


async def sse(request: web.Request) -> web.StreamResponse:
    """``GET /v1/stream?quotes=AAPL,MSFT&bars=AAPL&barSize=1 min&orders=true``: one
    event stream. Order events need an API key; ``Last-Event-ID`` resumes them."""
    broker = request.app[BROKER_KEY]
    orders = flag(request.query, "orders")
    portfolio = flag(request.query, "portfolio")
    since = since_of(request)
    wants = sse_wants(request)
    if orders or portfolio or since is not None or any(k == "pnl" for k, _ in wants):
        auth(request, trading=True)  # order, account and P&L events always need a key
    else:
        auth(request)
    if not wants and not orders and not portfolio:
        raise bad_request("quotes", "name at least one stream: quotes=, bars=, "
                          "realtimeBars=, ticks=, pnl=, portfolio=true or orders=true")
    cfg = request.app[CONFIG_KEY].streams
    c = Consumer(caller_of(request), cfg.consumer_queue, orders)
    c.on_slow = abort_later(request)
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
        first = [b"retry: 2000\n\n", sse_event("subscribed", 0, orjson.dumps(
            {"type": "subscribed", "streams": [summary(h) for h in held],
             "orders": orders, "seq": broker.seq}))]
        first += [sse_event("order", seq, e) for seq, e in replay]
        first += [sse_event(h["last"]["type"], 0, orjson.dumps(h["last"]))
                  for h in held if h.get("last")]
        await resp.write(b"".join(first))
        c.wire = "sse" if resp.headers.get("Transfer-Encoding") == "chunked" else "sse-raw"
        c.transport = request.transport
        await pump_events(c, broker, cfg.heartbeat, lambda b: resp.write(b), _sse_batch,
                    b": keep-alive\n\n")
        if c.closed and c.closed != "client gone":
            await resp.write(sse_event("closed", 0, orjson.dumps({"type": "closed",
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


def _sse_batch(items: list[tuple[str, int, bytes]]) -> bytes:
    return b"".join(sse_event(t, s, line) for t, s, line in items)
