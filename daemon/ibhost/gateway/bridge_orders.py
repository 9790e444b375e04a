"""The wheel-strat bridge's order and account paths: place and cancel, executions, open
orders, positions, portfolio, account summary and P&L, in the bridge's shapes; and
the contract an order or an option quote names."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from .. import models
from ..asks_families import BridgeCancel, BridgeExecutions, BridgeOrder
from ..errors import IbhostError, bad_request
from ..validate import (
    opt_int,
    opt_str,
    parse_iso,
)
from . import orders
from .common import (
    auth,
    connector,
    request_body,
)


def _text(x: Any) -> str:
    """A string field as the bridge's ib_insync objects held it: ``""`` when unset."""
    return "" if x is None else str(x)


def _multiplier(x: Any) -> str:
    """IB's multiplier as the text IB sent (``"100"``; ``""`` for a stock): ib_insync
    kept it a string, the connector answers a number."""
    if x is None or x == "":
        return ""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


async def place_order(request: web.Request) -> web.Response:
    auth(request, trading=True)
    body = await request_body(request)
    ask = BridgeOrder.read(body)
    uid = ask.uid or "anon"
    fwd = orders.fields(ask.order(body))
    # uid is the user, not an order key: it travels as orderRef (so fills map back to
    # the user) and never deduplicates. The bridge placed every order it was sent: two
    # identical orders, or one re-placed after a cancel, are two orders at IB. Only an
    # explicit Idempotency-Key header makes a retry a replay.
    out = await orders.submit(request, fwd, request.headers.get("Idempotency-Key"))
    result = out.body
    return web.json_response({"orderId": result["orderId"], "permId": result.get("permId"),
                              "status": result["status"], "uid": uid,
                              "message": "order placed"}, headers=out.headers)


async def cancel_order(request: web.Request) -> web.Response:
    auth(request, trading=True)
    ask = BridgeCancel.read(await request_body(request))
    order_id, perm_id = ask.orderId, ask.permId
    if not order_id:
        open_orders = models.plain(await connector(request).open_orders())
        match = next((o for o in open_orders if o.get("permId") == perm_id), None)
        if match is None:
            raise IbhostError("not_found", f"no open order with permId {perm_id}",
                              field="permId")
        order_id = match["orderId"]
    o = models.plain(await connector(request).cancel_order(order_id))
    return web.json_response({"orderId": o["orderId"], "permId": o.get("permId"),
                              "status": o["status"], "message": "cancel requested"})


def _contract_fields(x: dict[str, Any]) -> dict[str, Any]:
    """A contract's fields as ib_insync's Contract held them (its defaults where IB
    sends nothing: ``""``, ``0.0``, ``0``), the multiplier as IB's text."""
    return {"secType": _text(x.get("secType")), "right": _text(x.get("right")),
            "strike": float(x.get("strike") or 0.0),
            "expiration": _text(x.get("lastTradeDateOrContractMonth")),
            "localSymbol": _text(x.get("localSymbol")), "conId": int(x.get("conId") or 0),
            "multiplier": _multiplier(x.get("multiplier"))}


def _time(iso: str) -> str:
    """An execution's time as the bridge wrote it: ``str(datetime)`` in UTC."""
    try:
        return str(dt.datetime.fromisoformat(iso).astimezone(dt.UTC))
    except (TypeError, ValueError):
        return iso


async def executions(request: web.Request) -> web.Response:
    auth(request, always=True)
    ask = BridgeExecutions.read(request.query, query=True)
    # the connector counts the days back from IB's clock; wheel-strat's callers also
    # send since=ISO, which the bridge ignored: both apply (the later one wins)
    params = {"lookbackDays": str(ask.lookbackDays)}
    if "since" in request.query:
        params.update(_since(ask.since))
    fills = models.plain(await connector(request).executions(params))
    # commission: 0.0 until IB's commission report arrives, as the bridge's (ib_insync's
    # empty CommissionReport); never IB's unset 1.797e308
    out = [{"execId": f["execId"], "symbol": f["symbol"], "side": f["side"],
            "shares": f["shares"], "price": f["price"], "avgPrice": f.get("avgPrice"),
            "cumQty": f.get("cumQty"), "commission": f.get("commission") or 0.0,
            "time": _time(f["time"]), "orderRef": _text(f.get("orderRef")),
            **_contract_fields(f)} for f in fills]
    return web.json_response({"executions": out, "count": len(out)})


def _since(raw: str) -> dict[str, str]:
    """``since`` as the connector takes it: a date-time; one before 1970 asks for
    everything (no lower bound), one after 2100 for nothing after it."""
    if not raw:
        raise bad_request("since", "must be an ISO 8601 date/time like "
                                   "2025-11-20T14:30:00Z")
    t = parse_iso("since", raw)
    if t.year < 1970:
        return {}
    if t.year > 2100:
        t = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    return {"since": t.isoformat(timespec="seconds")}


async def open_orders(request: web.Request) -> web.Response:
    auth(request, always=True)
    trades = models.plain(await connector(request).open_orders())
    out = [{"orderId": t["orderId"], "permId": t.get("permId"), "status": t["status"],
            "action": t["action"], "orderType": t["orderType"], "lmtPrice": t["limitPrice"],
            "auxPrice": t["stopPrice"], "totalQuantity": t["quantity"],
            "remaining": t["remaining"], "filled": t["filled"],
            "avgFillPrice": t["avgFillPrice"], "tif": _text(t["tif"]),
            "account": t.get("account"), "orderRef": _text(t.get("orderRef")),
            "initMarginChange": None, "symbol": t["symbol"], **_contract_fields(t),
            "currency": _text(t.get("currency")), "exchange": _text(t.get("exchange"))}
           for t in trades]
    return web.json_response({"orders": out, "count": len(out)})


async def positions(request: web.Request) -> web.Response:
    auth(request, always=True)
    pos = models.plain(await connector(request).positions())
    out = [{"account": p["account"], "symbol": p["symbol"], "quantity": p["position"],
            "avgCost": p["avgCost"], **_contract_fields(p),
            "companyName": p.get("longName") if p["secType"] in ("STK", "ETF") else None}
           for p in pos]
    return web.json_response({"positions": out, "count": len(out)})


async def portfolio(request: web.Request) -> web.Response:
    auth(request, always=True)
    items = models.plain(await connector(request).portfolio())
    out = [{"account": p["account"], "symbol": p["symbol"], "quantity": p["position"],
            "avgCost": p["averageCost"], "marketPrice": p["marketPrice"],
            "marketValue": p["marketValue"], "realizedPnl": p["realizedPNL"],
            "unrealizedPnl": p["unrealizedPNL"], **_contract_fields(p)} for p in items]
    return web.json_response({"positions": out, "count": len(out)})


SUMMARY_TAGS = ("NetLiquidation", "TotalCashValue", "BuyingPower", "AvailableFunds",
                "ExcessLiquidity", "DailyPnL", "RealizedPnL", "UnrealizedPnL")
BASE_TAGS = ("NetLiquidation", "DailyPnL", "RealizedPnL", "UnrealizedPnL")


async def account_summary(request: web.Request) -> web.Response:
    auth(request, always=True)
    rows = models.plain(await connector(request).account_summary())
    out: dict[str, Any] = {}
    if rows:  # IB reports the account on every row, not as a summary tag
        out["AccountCode"] = str(rows[0]["account"])
    for r in rows:
        tag, cur = r["tag"], (r.get("currency") or "").upper()
        if tag == "AccountCode":
            out[tag] = str(r["value"])
        elif tag in SUMMARY_TAGS and (cur == "USD" or (cur in ("", "BASE") and
                                                       tag in BASE_TAGS)):
            v = r["value"]
            out[tag] = v if isinstance(v, int | float) else None
    return web.json_response(out)


async def pnl(request: web.Request) -> web.Response:
    auth(request, always=True)
    q = request.query
    p = models.plain(await connector(request).pnl({
        "account": opt_str(q, "account", to_ib=True),
        "model": opt_str(q, "model", to_ib=True)}))
    return web.json_response({"dailyPnL": p["dailyPnL"], "unrealizedPnL": p["unrealizedPnL"],
                              "realizedPnL": p["realizedPnL"], "value": None})


async def pnl_single(request: web.Request) -> web.Response:
    auth(request, always=True)
    q = request.query
    if not q.get("conId"):
        raise bad_request("conId", "is required (missing-conId)")
    con_id = opt_int(q, "conId", 0, minimum=1)
    p = models.plain(await connector(request).pnl({
        "account": opt_str(q, "account", to_ib=True),
        "model": opt_str(q, "model", to_ib=True), "conId": con_id}))
    return web.json_response({"dailyPnL": p["dailyPnL"], "unrealizedPnL": p["unrealizedPnL"],
                              "realizedPnL": p["realizedPnL"], "value": p.get("value"),
                              "marketValue": p.get("value"), "position": p.get("position")})
