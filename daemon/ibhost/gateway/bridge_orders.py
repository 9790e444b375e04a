"""The wheel-strat bridge's order and account paths: place and cancel, executions, open
orders, positions, portfolio, account summary and P&L, in the bridge's shapes; and
the contract an order or an option quote names."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from .. import models
from ..errors import IbhostError, bad_request
from ..validate import (
    opt_float,
    opt_int,
    opt_str,
    parse_iso,
    req_str,
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


def _expiration(raw: Any, *, required: bool = True) -> str:
    """YYYYMMDD (or YYYY-MM-DD)."""
    if raw in (None, ""):
        if required:
            raise bad_request("expiration", "is required for an option (YYYYMMDD)")
        return ""
    text = raw.replace("-", "") if isinstance(raw, str) else ""
    if not (text.isascii() and text.isdigit() and len(text) == 8):
        raise bad_request("expiration", "must be a date like 20261218 or 2026-12-18")
    return text


def _option(body: dict[str, Any], *, for_order: bool = False) -> dict[str, Any]:
    """An option contract from the bridge's fields (expiration, strike, right, ...)."""
    expiration = _expiration(body.get("expiration") or
                             body.get("lastTradeDateOrContractMonth"))
    strike = opt_float(body, "strike", positive=True)
    if strike is None:
        raise bad_request("strike", "is required for an option")
    if strike >= 1e9:
        raise bad_request("strike", "must be below 1e9")
    right = req_str(body, "right", upper=True)
    if right not in ("C", "P"):
        raise bad_request("right", "must be C or P")
    spec: dict[str, Any] = {
        "symbol": req_str(body, "symbol", upper=True), "secType": "OPT",
        "lastTradeDateOrContractMonth": expiration, "strike": strike, "right": right,
        "exchange": "SMART" if for_order else (opt_str(body, "exchange") or "SMART"),
        "currency": opt_str(body, "currency") or "USD"}
    for k in ("tradingClass", "multiplier"):
        if body.get(k):
            spec[k] = str(body[k])
    if body.get("conId") is not None:
        spec["conId"] = opt_int(body, "conId", 0, minimum=1)
    return spec


async def place_order(request: web.Request) -> web.Response:
    auth(request, trading=True)
    body = await request_body(request)
    sec_type = opt_str(body, "secType", "STK", upper=True, choices=("STK", "OPT"))
    if sec_type != "OPT":  # the option fields are not used, but must still make sense
        opt_float(body, "strike", minimum=0, maximum=1e9)
        _expiration(body.get("expiration"), required=False)
        opt_str(body, "right", upper=True, choices=("", "C", "P"))
    spec = (_option(body, for_order=True) if sec_type == "OPT" else
            {"symbol": req_str(body, "symbol", upper=True), "secType": "STK",
             "exchange": "SMART", "currency": "USD"})
    # anything but LMT was a market order at the bridge; a typo must not become one here
    order_type = opt_str(body, "orderType", "LMT", upper=True, choices=("LMT", "MKT"))
    uid = opt_str(body, "uid", max_len=128, to_ib=True) or "anon"
    fwd = orders.fields({**body, **spec, "orderType": "LMT" if order_type == "LMT" else "MKT",
                         "orderRef": uid, "dedupe": False})
    if order_type == "LMT" and fwd.get("limitPrice") is None:
        raise bad_request("limitPrice", "is required for LMT orders")
    if order_type != "LMT":
        fwd.pop("limitPrice", None)
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
    body = await request_body(request)
    order_id = opt_int(body, "orderId", 0, minimum=0)
    perm_id = opt_int(body, "permId", 0, minimum=0)
    if not order_id and not perm_id:
        raise bad_request("orderId", "give orderId or permId")
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
    days = opt_float(request.query, "lookbackDays", 7.0, minimum=0, maximum=3650)
    assert days is not None
    # the connector counts the days back from IB's clock; wheel-strat's callers also
    # send since=ISO, which the bridge ignored: both apply (the later one wins)
    params = {"lookbackDays": str(days)}
    if "since" in request.query:
        params.update(_since(request.query["since"]))
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
