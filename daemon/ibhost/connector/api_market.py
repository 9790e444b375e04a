"""connector.sock's contract and market-data routes: validate, head timestamp,
option chain, snapshot, and quote subscriptions held until deleted."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web

from .. import models
from ..errors import IbhostError
from ..validate import int_list, json_body, opt_bool, opt_float, opt_int, opt_str
from .apibase import SERVICE_KEY, STREAMS_KEY, aged, max_age_of, priority, reply
from .contracts import parse_spec
from .streams.live import REST

GENERIC_TICKS = (100, 101, 104, 106, 165, 221, 225, 233, 236, 258, 293, 294, 295, 375, 411)


async def validate(request: web.Request) -> web.Response:
    body = await json_body(request)
    details, age = await request.app[SERVICE_KEY].validate(
        parse_spec(body), max_age_of(request.query))
    return aged(details, age)


async def head_timestamp(request: web.Request) -> web.Response:
    q = request.query
    spec = parse_spec(dict(q), query=True)
    what = opt_str(q, "whatToShow", "TRADES", upper=True,
                   choices=("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"))
    ts = await request.app[SERVICE_KEY].head_timestamp(
        spec, what, opt_bool(q, "useRTH", True), priority(q))
    return reply(models.HeadTimestamp(symbol=spec.symbol, whatToShow=what,
                                      headTimestamp=ts.isoformat()))


async def option_chain(request: web.Request) -> web.Response:
    q = dict(request.query)
    max_age = max_age_of(q)
    q.pop("maxAge", None)
    chain, age = await request.app[SERVICE_KEY].option_chain(parse_spec(q, query=True),
                                                             max_age)
    return aged(chain, age)


async def snapshot(request: web.Request) -> web.Response:
    body = await json_body(request)
    spec = parse_spec(body)
    generic = int_list(body, "genericTicks", GENERIC_TICKS)
    md_type = opt_int(body, "marketDataType", 1, minimum=1, maximum=4)
    wait = opt_float(body, "wait", 2.0, minimum=0.1, maximum=30.0)
    assert wait is not None
    svc = request.app[SERVICE_KEY]
    hub = request.app[STREAMS_KEY]
    con_id = (await svc.resolve(spec)).conId
    held = hub.held_quote(con_id, generic)
    if held is not None and int(held.handle.marketDataType or 1) == md_type and \
            svc._complete(held.handle, generic):
        # a live subscription already holds this contract's quote: its newest state,
        # with its age (``time`` is IB's), and no message to IB
        hub.snapshot_answered(held)
        return aged(svc._ticker_dict(held.handle), time.monotonic() - held.last_update)
    quote = await svc.snapshot(spec, generic=generic, md_type=md_type, wait=wait)
    if md_type == 1 and not quote.delayed:
        hub.snapshot_asked(spec, con_id, generic)  # polled: keep it streaming a while
    return reply(quote)


async def subscribe(request: web.Request) -> web.Response:
    """A quote subscription held until DELETE (the same one a stream of it uses)."""
    body = await json_body(request)
    spec = parse_spec(body)
    generic = int_list(body, "genericTicks", GENERIC_TICKS)
    hub = request.app[STREAMS_KEY]
    held = await hub.hold(REST, "quote", spec, {"generic": generic})
    return reply(_held(request, hub.subs[held["key"]]), status=201)


def _held(request: web.Request, sub: Any) -> models.HeldQuote:
    q = request.app[SERVICE_KEY]._ticker_dict(sub.handle)
    return models.HeldQuote(**msgspec.structs.asdict(q), resubscribed=sub.resubscribed,
                            key=sub.key)


def _rest_held(request: web.Request) -> list[Any]:
    return [s for s in request.app[STREAMS_KEY].subs.values() if REST in s.holders]


async def subscriptions(request: web.Request) -> web.Response:
    return reply([_held(request, s) for s in _rest_held(request)])


async def unsubscribe(request: web.Request) -> web.Response:
    con_id = opt_int(request.match_info, "conId", 0, minimum=1)
    mine = [s for s in _rest_held(request) if s.contract.conId == con_id]
    if not mine:
        raise IbhostError("not_found", f"no subscription for conId {con_id}")
    for s in mine:
        request.app[STREAMS_KEY].release(REST, s.key)
    return web.json_response({"ok": True, "conId": con_id})


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_post("/validate", validate)
    r.add_get("/head-timestamp", head_timestamp)
    r.add_get("/option-chain", option_chain)
    r.add_post("/snapshot", snapshot)
    r.add_get("/subscriptions", subscriptions)
    r.add_post("/subscriptions", subscribe)
    r.add_delete("/subscriptions/{conId}", unsubscribe)
