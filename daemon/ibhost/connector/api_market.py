"""connector.sock's contract and market-data routes: validate, head timestamp,
option chain, snapshot, and quote subscriptions held until deleted."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web

from .. import asks, models
from ..errors import IbhostError
from ..validate import json_body, opt_int
from .apibase import SERVICE_KEY, STREAMS_KEY, aged, max_age_of, reply
from .asks import QuoteHold
from .contracts import parse_spec
from .pacing import PRIORITIES
from .streams.live import REST

GENERIC_TICKS = asks.GENERIC_TICKS


async def validate(request: web.Request) -> web.Response:
    body = await json_body(request)
    details, age = await request.app[SERVICE_KEY].validate(
        parse_spec(body), max_age_of(request.query))
    return aged(details, age)


async def head_timestamp(request: web.Request) -> web.Response:
    ask = asks.HeadTimestamp.read(request.query, query=True)
    ts = await request.app[SERVICE_KEY].head_timestamp(
        ask.contract, ask.whatToShow, ask.useRTH, PRIORITIES[ask.priority])
    return reply(models.HeadTimestamp(symbol=ask.contract.symbol, whatToShow=ask.whatToShow,
                                      headTimestamp=ts.isoformat()))


async def option_chain(request: web.Request) -> web.Response:
    q = dict(request.query)
    max_age = max_age_of(q)
    q.pop("maxAge", None)
    chain, age = await request.app[SERVICE_KEY].option_chain(
        asks.OptionChain.read(q, query=True).contract, max_age)
    return aged(chain, age)


async def snapshot(request: web.Request) -> web.Response:
    ask = asks.Snapshot.read(await json_body(request))
    spec, generic, md_type, wait = ask.contract, ask.genericTicks, ask.marketDataType, ask.wait
    svc = request.app[SERVICE_KEY]
    hub = request.app[STREAMS_KEY]
    con_id = (await svc.resolve(spec)).conId
    held = hub.held_quote(con_id, generic)
    if held is not None and serves(int(held.handle.marketDataType or 1), md_type) and \
            svc._complete(held.handle, generic):
        # a live subscription already holds this contract's quote: its newest state,
        # with its age (``time`` is IB's), and no message to IB
        hub.snapshot_answered(held)
        return aged(svc._ticker_dict(held.handle), time.monotonic() - held.last_update)
    quote = await svc.snapshot(spec, generic=generic, md_type=md_type, wait=wait)
    if quote.marketDataType == 1 and serves(1, md_type):
        hub.snapshot_asked(spec, con_id, generic)  # polled: keep it streaming a while
    return reply(quote)


def serves(held: int, asked: int) -> bool:
    """Whether a held quote of market-data type ``held`` answers a snapshot asked for
    as ``asked``: its own type, and a live quote answers type 3 too, which IB answers
    live where the user is subscribed (a live quote held shows they are) and delayed
    only where not (the wheel-strat bridge asks its option quotes so)."""
    return held == asked or (held == 1 and asked == 3)


async def subscribe(request: web.Request) -> web.Response:
    """A quote subscription held until DELETE (the same one a stream of it uses)."""
    ask = QuoteHold.read(await json_body(request))
    hub = request.app[STREAMS_KEY]
    held = await hub.hold(REST, "quote", ask.contract, {"generic": ask.genericTicks})
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
