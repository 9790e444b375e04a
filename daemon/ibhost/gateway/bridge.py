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
from ..asks_families import BridgeHistorical, bridge_option
from ..errors import IbhostError, bad_request
from ..ipc import KEYLESS
from ..symbols import bridge_contract
from ..validate import (
    opt_int,
    req_str,
    symbol_ok,
)
from . import bridge_orders
from .bridge_orders import _multiplier, _text
from .common import (
    Route,
    auth,
    caller_of,
    connector,
    request_body,
    trusted,
)
from .keys import AUTH_KEY, HEALTH_KEY, LOGS_KEY, STARTED_KEY

TIERS = (("realtime", 1), ("frozen", 2), ("delayed", 3))
SOURCES = {1: "realtime", 2: "frozen", 3: "delayed", 4: "delayed-frozen"}
MAX_BATCH = 100


def _valid(x: Any) -> bool:
    return isinstance(x, int | float) and x == x and x > 0


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
                {**bridge_contract(symbol), "marketDataType": md_type}))
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
    st = bridge_contract(symbol)
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


async def option_quote(request: web.Request) -> web.Response:
    auth(request, always=True)
    body = await request_body(request)
    return web.json_response(await _option_quote(request, bridge_option(body)))


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
            specs.append(bridge_option(c))
        except IbhostError as e:  # the item's own field, named with its place
            problem = e.message.removeprefix(f"{e.field}: ")
            raise bad_request(f"contracts[{i}].{e.field}", problem) from None

    # one underlying quote per symbol, shared by the batch's options on it (a batch of
    # 100 contracts on one stock asks IB for the stock once, not 100 times)
    unds = {sym: asyncio.ensure_future(_tiered(request, sym))
            for sym in dict.fromkeys(s["symbol"] for s in specs)}

    async def one(spec: dict[str, Any]) -> dict[str, Any]:
        q = await _option_quote(request, spec, unds[spec["symbol"]])
        return {**q, "expiration": spec["lastTradeDateOrContractMonth"],
                "strike": spec["strike"], "right": spec["right"]}

    try:
        return await _per_item([(f"{s['symbol']} {s['lastTradeDateOrContractMonth']} "
                                 f"{s['strike']:g} {s['right']}", one(s)) for s in specs])
    finally:
        for task in unds.values():
            task.cancel()
        await asyncio.gather(*unds.values(), return_exceptions=True)


async def _plain(answer: Awaitable[Any]) -> Any:
    """An answer's model as the plain values the bridge's shapes are built from."""
    return models.plain(await answer)


async def _option_quote(request: web.Request, spec: dict[str, Any],
                        und: Awaitable[dict[str, Any] | None] | None = None
                        ) -> dict[str, Any]:
    """One option's quote and its underlying's price (``und``: the underlying's quote
    already asked for, shared by a batch)."""
    answers: list[Any] = await asyncio.gather(
        _plain(connector(request).snapshot({**spec, "marketDataType": 3})),
        asyncio.shield(und) if und is not None else _tiered(request, spec["symbol"]),
        return_exceptions=True)
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


def _ib_end(raw: str) -> str | None:
    """The bridge's endDateTime (IB's text, '' for now; read by BridgeHistorical) as
    ISO 8601."""
    return ibrules.parse_end_datetime(raw).isoformat() if raw else None


async def historical(request: web.Request) -> web.Response:
    auth(request, always=True)
    body = await request_body(request)
    ask = BridgeHistorical.read(body)
    spec = bridge_option(body) if ask.is_option else {
        "symbol": ask.symbol, "secType": "STK", "exchange": "SMART", "currency": "USD"}
    fwd = {**spec, "barSize": ask.barSize, "duration": ask.duration,
           "whatToShow": ask.whatToShow, "useRTH": ask.useRTH}
    end = _ib_end(ask.endDateTime)
    if end:
        fwd["end"] = end
    # the bars as the bridge wrote them, written by the connector (connector/shapes.py)
    bars = await connector(request).historical_bytes({**fwd, "shape": "bridge"})
    return web.Response(body=b'{"symbol": %s, "bars": %s}' % (
        json.dumps(body["symbol"]).encode(), bars), content_type="application/json",
        charset="utf-8")


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
    Route("POST", "/order", bridge_orders.place_order, "bridge"),
    Route("POST", "/order/cancel", bridge_orders.cancel_order, "bridge"),
    Route("GET", "/executions", bridge_orders.executions, "bridge"),
    Route("GET", "/orders", bridge_orders.open_orders, "bridge"),
    Route("GET", "/positions", bridge_orders.positions, "bridge"),
    Route("GET", "/portfolio", bridge_orders.portfolio, "bridge"),
    Route("GET", "/account-summary", bridge_orders.account_summary, "bridge"),
    Route("GET", "/pnl", bridge_orders.pnl, "bridge"),
    Route("GET", "/pnl-single", bridge_orders.pnl_single, "bridge"),
)
