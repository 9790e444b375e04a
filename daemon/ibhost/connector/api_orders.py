"""connector.sock's order and account routes: place, cancel, find, open orders,
executions, positions, portfolio, account summary and P&L."""

from __future__ import annotations

import asyncio
import datetime as dt

from aiohttp import web

from .. import models
from ..asks import Executions, Order
from ..validate import json_body, opt_int
from .apibase import SERVICE_KEY, STREAMS_KEY, aged, asks_ib, reply
from .asks import OrderByRef, PnlQuery


async def place_order(request: web.Request) -> web.Response:
    o = Order.read(await json_body(request))
    # shielded: a caller that goes away must not cut an order off half-way
    result = await asyncio.shield(request.app[SERVICE_KEY].orders.place_order(
        o.contract, action=o.action, quantity=o.quantity, order_type=o.orderType,
        limit=o.limitPrice, stop=o.stopPrice, tif=o.tif, order_ref=o.orderRef,
        outside_rth=o.outsideRth, dedupe=o.dedupe))
    return reply(result, status=200 if result.duplicate else 201)


async def cancel_order(request: web.Request) -> web.Response:
    order_id = opt_int(request.match_info, "orderId", 0, minimum=1)
    return reply(await asyncio.shield(request.app[SERVICE_KEY].orders.cancel_order(order_id)))


async def order_by_ref(request: web.Request) -> web.Response:
    ask = OrderByRef.read(request.query, query=True)
    return reply(request.app[SERVICE_KEY].orders.order_by_ref(
        ask.orderRef, order_id=ask.orderId,
        client_id=None if ask.clientId < 0 else ask.clientId, perm_id=ask.permId))


async def open_orders(request: web.Request) -> web.Response:
    svc = request.app[SERVICE_KEY]
    if asks_ib(request.query):
        return aged(await svc.orders.all_open_orders(), 0.0)
    return aged(svc.orders.open_orders(), svc.ages.age("orders"))


async def executions(request: web.Request) -> web.Response:
    q = request.query
    svc = request.app[SERVICE_KEY]
    ask = Executions.read(q, query=True)
    since = ask.since
    if ask.lookbackDays is not None:  # "the last N days" by IB's clock, not this machine's
        floor = svc.now() - dt.timedelta(days=ask.lookbackDays)
        since = floor if since is None else max(since, floor)
    ask_ib = asks_ib(q)
    fills = await svc.orders.executions(
        symbol=ask.symbol, sec_type=ask.secType, side=ask.side, since=since,
        client_id=ask.clientId, ask_ib=ask_ib)
    return aged(fills, 0.0 if ask_ib else svc.ages.age("executions"))


async def positions(request: web.Request) -> web.Response:
    svc = request.app[SERVICE_KEY]
    return aged(svc.positions(), svc.ages.age("positions"))


async def account_summary(request: web.Request) -> web.Response:
    svc = request.app[SERVICE_KEY]
    rows = await svc.account.summary()
    return aged(rows, svc.ages.age("summary"))


async def portfolio(request: web.Request) -> web.Response:
    svc = request.app[SERVICE_KEY]
    return aged(svc.account.portfolio(), svc.ages.age("portfolio"))


async def pnl(request: web.Request) -> web.Response:
    q = request.query
    svc = request.app[SERVICE_KEY]
    ask = PnlQuery.read(q, query=True)
    account, model, con_id = ask.account, ask.model, ask.conId
    held = request.app[STREAMS_KEY].held_pnl(svc.account.account(account), model, con_id)
    if held is not None:  # a P&L stream holds IB's subscription: its newest answer
        return reply(models.Pnl(**{k: v for k, v in held.items()
                                   if k not in ("type", "key", "symbol")}))
    return reply(await svc.account.pnl(account, model, con_id))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_post("/orders", place_order)
    r.add_get("/orders", open_orders)
    r.add_get("/orders/by-ref", order_by_ref)
    r.add_delete("/orders/{orderId}", cancel_order)
    r.add_get("/executions", executions)
    r.add_get("/positions", positions)
    r.add_get("/portfolio", portfolio)
    r.add_get("/account-summary", account_summary)
    r.add_get("/pnl", pnl)
