"""The wheel-strat bridge contract at its own paths, so its clients work unchanged
(``dart-technologies/wheel-strat``: ``scripts/bridge/ibkr_bridge.py`` and the clients
``services/trading.ts``, ``functions/src/lib/ibkrSchemas.ts``).

Shapes only: errors are ``{"error": "<text>", ...}`` as the bridge wrote them;
every path but /health, /ping and /diag needs ``X-API-KEY`` once a key is
configured; orders pass ibhost's guards and idempotency. The bridge's ``uid``
travels as the order's ``orderRef`` so executions can be matched to users, and
with the order's fields it is the idempotency key for two minutes: the same
user's same order sent again is answered from the first, a different order is
placed (an ``Idempotency-Key`` header, when sent, is used instead).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from .. import __version__, ibrules, models
from ..errors import IbhostError, bad_request
from ..ipc import KEYLESS
from ..validate import (
    opt_bool,
    opt_float,
    opt_int,
    opt_str,
    parse_iso,
    req_str,
    symbol_ok,
)
from . import orders
from .common import (
    Route,
    auth,
    caller_of,
    check_duration,
    connector,
    request_body,
    trusted,
)
from .keys import AUTH_KEY, HEALTH_KEY, LOGS_KEY, STARTED_KEY

INDICES = ("VIX", "SPX", "NDX", "RUT", "VIXW")  # the bridge asks for these as indices
TIERS = (("realtime", 1), ("frozen", 2), ("delayed", 3))
SOURCES = {1: "realtime", 2: "frozen", 3: "delayed", 4: "delayed-frozen"}
MAX_BATCH = 100


def _stock(symbol: str) -> dict[str, Any]:
    s = symbol.upper()
    if s in INDICES:
        return {"symbol": s, "secType": "IND", "exchange": "CBOE" if s.startswith("VIX")
                else "SMART", "currency": "USD"}
    return {"symbol": s, "secType": "STK", "exchange": "SMART", "currency": "USD"}


def _valid(x: Any) -> bool:
    return isinstance(x, int | float) and x == x and x > 0


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


def _z(iso: Any) -> Any:
    """An ISO time in UTC as the bridge wrote its own (``...T15:30:00Z``)."""
    if isinstance(iso, str) and iso.endswith("+00:00"):
        return iso.removesuffix("+00:00") + "Z"
    return iso


def _has_price(q: dict[str, Any]) -> bool:
    return any(_valid(q.get(k)) for k in ("last", "bid", "close"))


def _quote(symbol: str, q: dict[str, Any], source: str) -> dict[str, Any]:
    return {"symbol": symbol, **{k: q.get(k) for k in ("last", "bid", "ask", "high", "low",
                                                       "volume", "close")},
            "source": source}


async def _tiered(request: web.Request, symbol: str) -> dict[str, Any] | None:
    """realtime, then frozen, then delayed: the first tier with a price."""
    for tier, md_type in TIERS:
        try:
            q = models.plain(await connector(request).snapshot(
                {**_stock(symbol), "marketDataType": md_type}))
        except IbhostError as e:
            if e.code in ("unavailable", "timeout", "bad_request"):
                raise
            continue  # not subscribed, not found, competing session: try the next tier
        if _has_price(q):
            return _quote(symbol, q, tier)
    return None


def _symbol(request: web.Request) -> str:
    s = req_str(request.match_info, "symbol", max_len=24)
    if not symbol_ok(s, ".-"):
        raise bad_request("symbol", "has characters a symbol cannot contain")
    return s


# --- market data ---------------------------------------------------------------------------

async def market_data(request: web.Request) -> web.Response:
    auth(request, always=True)
    symbol = _symbol(request)
    q = await _tiered(request, symbol)
    if q is None:
        return web.json_response({"error": "No market data"}, status=404)
    return web.json_response(q)


async def market_data_batch(request: web.Request) -> web.Response:
    auth(request, always=True)
    body = await request_body(request, required=True)
    symbols = body.get("symbols")
    if symbols is None:
        symbols = []  # none: {"results": []}, as the bridge answers
    if not isinstance(symbols, list) or len(symbols) > MAX_BATCH or not all(
            isinstance(s, str) and 0 < len(s) <= 24 for s in symbols):
        raise bad_request("symbols", f"must be a list of up to {MAX_BATCH} symbols")
    wanted = list(dict.fromkeys(s.upper() for s in symbols))

    async def one(s: str) -> dict[str, Any] | None:
        try:
            return await _tiered(request, s)
        except IbhostError as e:
            if e.code in ("unavailable", "timeout"):
                raise
            return None  # a bad symbol in a batch is left out, as the bridge does

    found = await asyncio.gather(*(one(s) for s in wanted))  # wanted: upper, as the bridge
    return web.json_response({"results": [q for q in found if q is not None]})


async def _chain(request: web.Request, symbol: str) -> dict[str, Any]:
    st = _stock(symbol)
    params = {"symbol": st["symbol"], "secType": st["secType"], "exchange": st["exchange"]}
    if "maxAge" in request.query:  # the oldest cached answer the caller accepts
        params["maxAge"] = request.query["maxAge"]
    chain = models.plain(await connector(request).option_chain(params))
    chains = chain["chains"]
    target = next((c for c in chains if (c.get("tradingClass") or "").upper() ==
                   symbol.upper()), None) or next(
        (c for c in chains if c["exchange"] == "SMART"), chains[0])
    return {
        "symbol": symbol, "expirations": sorted(target["expirations"]),
        "strikes": sorted(target["strikes"]), "multiplier": _multiplier(target["multiplier"]),
        "exchange": _text(target["exchange"]), "currency": "USD",
        "tradingClass": _text(target["tradingClass"]),
        # ib_insync's decoder passed IB's text on: a string, as the bridge's callers read it
        "underlyingConId": _text(chain["underlying"]["conId"])}


async def option_chain(request: web.Request) -> web.Response:
    auth(request, always=True)
    return web.json_response(await _chain(request, _symbol(request)))


def _batch(body: dict[str, Any], field: str, what: str) -> list[Any]:
    items = body.get(field)
    if items is None:
        return []
    if not isinstance(items, list) or len(items) > MAX_BATCH:
        raise bad_request(field, f"must be a list of up to {MAX_BATCH} {what}")
    return items


async def _per_item(calls: list[tuple[str, Awaitable[dict[str, Any]]]]) -> web.Response:
    """Every item answered on its own: one that fails is left out of ``results`` (as
    the bridge's batch leaves a bad symbol out) and named in ``errors``; only a
    connection that is down or a deadline fails the whole batch."""
    got = await asyncio.gather(*(c for _, c in calls), return_exceptions=True)
    results, errors = [], []
    for (name, _), r in zip(calls, got, strict=True):
        if isinstance(r, IbhostError) and r.code not in ("unavailable", "timeout"):
            errors.append({"item": name, "error": r.message})
        elif isinstance(r, BaseException):
            raise r
        else:
            results.append(r)
    return web.json_response({"results": results, "errors": errors})


async def option_chain_batch(request: web.Request) -> web.Response:
    """wheel-strat's ``POST /option-chain/batch {symbols}`` (its callers fall back to one
    request per symbol when it is missing): ``{results: [chain, ...]}``."""
    auth(request, always=True)
    body = await request_body(request, required=True)
    symbols = _batch(body, "symbols", "symbols")
    if not all(isinstance(s, str) and 0 < len(s) <= 24 and symbol_ok(s, ".-")
               for s in symbols):
        raise bad_request("symbols", "must be symbols like AAPL or BRK.B")
    wanted = list(dict.fromkeys(s.upper() for s in symbols))
    return await _per_item([(s, _chain(request, s)) for s in wanted])


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


async def option_quote(request: web.Request) -> web.Response:
    auth(request, always=True)
    body = await request_body(request)
    return web.json_response(await _option_quote(request, _option(body)))


async def option_quote_batch(request: web.Request) -> web.Response:
    """wheel-strat's ``POST /option-quote/batch {contracts: [{symbol, expiration,
    strike, right}]}``: each quote with its contract's fields, as its callers read it."""
    auth(request, always=True)
    body = await request_body(request, required=True)
    contracts = _batch(body, "contracts", "contracts")
    specs = []
    for i, c in enumerate(contracts):
        if not isinstance(c, dict):
            raise bad_request(f"contracts[{i}]", "must be an object {symbol, expiration, "
                                                 "strike, right}")
        try:
            specs.append(_option(c))
        except IbhostError as e:  # the item's own field, named with its place
            problem = e.message.removeprefix(f"{e.field}: ")
            raise bad_request(f"contracts[{i}].{e.field}", problem) from None

    async def one(spec: dict[str, Any]) -> dict[str, Any]:
        q = await _option_quote(request, spec)
        return {**q, "expiration": spec["lastTradeDateOrContractMonth"],
                "strike": spec["strike"], "right": spec["right"]}

    return await _per_item([(f"{s['symbol']} {s['lastTradeDateOrContractMonth']} "
                             f"{s['strike']:g} {s['right']}", one(s)) for s in specs])


async def _plain(answer: Awaitable[Any]) -> Any:
    """An answer's model as the plain values the bridge's shapes are built from."""
    return models.plain(await answer)


async def _option_quote(request: web.Request, spec: dict[str, Any]) -> dict[str, Any]:
    answers: list[Any] = await asyncio.gather(
        _plain(connector(request).snapshot({**spec, "marketDataType": 3})),
        _tiered(request, spec["symbol"]), return_exceptions=True)
    q, und = answers
    if isinstance(q, BaseException):
        raise q
    und_price = None
    if isinstance(und, dict):
        und_price = und.get("last") or und.get("bid") or und.get("close")
    out: dict[str, Any] = {
        "symbol": spec["symbol"], "bid": q.get("bid"), "ask": q.get("ask"),
        "last": q.get("last"), "close": q.get("close"), "undPrice": und_price,
        "source": SOURCES.get(int(q.get("marketDataType") or 3), "delayed")}
    g = q.get("greeks") or {}
    for ours, theirs in (("delta", "delta"), ("gamma", "gamma"), ("theta", "theta"),
                         ("vega", "vega"), ("impliedVol", "impliedVol"),
                         ("optPrice", "modelOptPrice")):
        if g.get(ours) is not None:
            out[theirs] = g[ours]
    return _no_bid(out)


def _no_bid(out: dict[str, Any]) -> dict[str, Any]:
    """The bridge's rule for an option with no bid (none, 0 or IB's -1): the last price,
    else the close, becomes both bid and ask when it is a price (> 0); otherwise the
    quote stays as IB gave it (``apply_option_fallbacks``)."""
    if not _valid(out.get("bid")):
        val = out.get("last") or out.get("close")
        if _valid(val):
            out["bid"] = out["ask"] = val
    return out


def _ib_end(raw: Any) -> str | None:
    """The bridge's endDateTime (IB's text, '' for now) as ISO 8601."""
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or len(raw) > 40:
        raise bad_request("endDateTime", "must be IB's 'yyyymmdd hh:mm:ss [TZ]' or ''")
    try:
        t = ibrules.parse_end_datetime(raw)
    except (ValueError, KeyError):
        raise bad_request("endDateTime", "must be IB's 'yyyymmdd hh:mm:ss [TZ]' or ''") \
            from None
    return t.isoformat()


async def historical(request: web.Request) -> web.Response:
    auth(request, always=True)
    body = await request_body(request)
    sec_type = opt_str(body, "secType", "", upper=True) or \
        opt_str(body, "sectype", "STK", upper=True)
    if not opt_str(body, "symbol"):
        raise bad_request("symbol", "is required")
    spec = (_option(body) if sec_type in ("OPT", "OPTION") else
            {"symbol": req_str(body, "symbol", upper=True), "secType": "STK",
             "exchange": "SMART", "currency": "USD"})
    check_duration(body)
    bar_size = opt_str(body, "barSize") or "1 day"
    fwd = {**spec, "barSize": bar_size, "duration": opt_str(body, "duration") or "1 M",
           "whatToShow": opt_str(body, "whatToShow", "TRADES", upper=True),
           "useRTH": opt_bool(body, "useRTH", True)}
    end = _ib_end(body.get("endDateTime"))
    if end:
        fwd["end"] = end
    # the bars as the bridge wrote them, written by the connector (connector/shapes.py)
    bars = await connector(request).historical_bytes({**fwd, "shape": "bridge"})
    return web.Response(body=b'{"symbol": %s, "bars": %s}' % (
        json.dumps(body["symbol"]).encode(), bars), content_type="application/json",
        charset="utf-8")


# --- trading ---------------------------------------------------------------------------------

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


# --- diagnostics -----------------------------------------------------------------------------

# The bridge's diag_state keys ibhost can fill, from the connector's diagnostics
# (lastConnectAt is the connector's connectedSince), then ibhost's ``state``
DIAG_FIELDS = (("lastConnectAt", "connectedSince"), ("lastDisconnectAt", "lastDisconnectAt"),
               ("lastIbErrorAt", "lastIbErrorAt"), ("lastIbErrorCode", "lastIbErrorCode"),
               ("heartbeatFailures", "heartbeatFailures"),
               ("reconnectAttempts", "reconnectAttempts"),
               ("lastHeartbeatAt", "lastHeartbeatAt"), ("state", "state"))
DIAG_COUNTS = ("heartbeatFailures", "reconnectAttempts")  # 0, never null, as the bridge's
DIAG_KEYED_FIELDS = (("lastIbErrorMessage", "lastIbErrorMessage"), ("reason", "reason"),
                     ("clientId", "clientId"))
MAX_LOG_LINES = 1000


def _diag(request: web.Request) -> dict[str, Any]:
    """The bridge's /diag body: its keys and types (times as ``...Z`` text, counts as
    integers, ``epoch`` the number of connections made); the reason, client id and
    IB's error text only with a key once keys are configured."""
    h = request.app[HEALTH_KEY].cached()
    c = h.get("connector") or {}
    ready = h["status"] in ("ok", "degraded")
    fields = DIAG_FIELDS + (DIAG_KEYED_FIELDS if trusted(request) else ())
    d = {ours: _z(c.get(theirs)) for ours, theirs in fields}
    for k in DIAG_COUNTS:
        d[k] = int(d.get(k) or 0)
    made = int(c.get("reconnectAttempts") or 0) - int(c.get("reconnectFailures") or 0)
    return {
        "timestamp": _z(dt.datetime.now(dt.UTC).isoformat()),
        "uptimeSeconds": int(time.monotonic() - request.app[STARTED_KEY]),
        "ibConnected": ready, "ready": ready, "epoch": max(made, 0), "diag": d,
        "locks": {}, "caches": {}, "version": __version__,
    }


async def diag(request: web.Request) -> web.Response:
    """The bridge's /diag (open, as the bridge's was): connection facts, no account
    data."""
    return web.json_response(_diag(request))


async def diag_logs(request: web.Request) -> web.Response:
    """The bridge's ``/diag/logs?limit=N`` (a key needed once keys are configured, as
    the bridge's): its /diag body, and (what the bridge meant to add) ``logs``, the
    gateway's last ``limit`` log lines, oldest first. API keys never appear in them;
    account ids only to a caller with a valid key."""
    auth(request, always=True)
    limit = opt_int(request.query, "limit", 100, minimum=0)
    lines = request.app[LOGS_KEY].recent(
        min(limit, MAX_LOG_LINES), redact=request.app[AUTH_KEY].redact,
        accounts=caller_of(request) != KEYLESS)
    return web.json_response({**_diag(request), "logs": lines})


ROUTES: tuple[Route, ...] = (
    Route("GET", "/diag", diag, "bridge"),
    Route("GET", "/diag/logs", diag_logs, "bridge"),
    # "batch" is POST /market-data/batch, never a symbol (GET on it: 405, Allow: POST)
    Route("GET", "/market-data/{symbol}", market_data, "bridge",
          match="/market-data/{symbol:(?!batch$)[^{}/]+}"),
    Route("POST", "/market-data/batch", market_data_batch, "bridge"),
    Route("GET", "/option-chain/{symbol}", option_chain, "bridge",
          match="/option-chain/{symbol:(?!batch$)[^{}/]+}"),
    Route("POST", "/option-chain/batch", option_chain_batch, "bridge"),
    Route("POST", "/option-quote", option_quote, "bridge"),
    Route("POST", "/option-quote/batch", option_quote_batch, "bridge"),
    Route("POST", "/historical", historical, "bridge"),
    Route("POST", "/order", place_order, "bridge"),
    Route("POST", "/order/cancel", cancel_order, "bridge"),
    Route("GET", "/executions", executions, "bridge"),
    Route("GET", "/orders", open_orders, "bridge"),
    Route("GET", "/positions", positions, "bridge"),
    Route("GET", "/portfolio", portfolio, "bridge"),
    Route("GET", "/account-summary", account_summary, "bridge"),
    Route("GET", "/pnl", pnl, "bridge"),
    Route("GET", "/pnl-single", pnl_single, "bridge"),
)
