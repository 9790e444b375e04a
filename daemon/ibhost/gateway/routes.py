"""The gateway's endpoints. Each validates its input (400 naming the field), checks
auth and trading guards, and forwards to the connector over connector.sock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .. import __version__, ibrules
from ..errors import IbhostError, bad_request
from ..validate import json_body, opt_bool, opt_float, opt_str
from . import formats, guards
from .idempotency import check_key, fingerprint
from .keys import (
    AUTH_KEY,
    CONFIG_KEY,
    CONNECTOR_KEY,
    HEALTH_KEY,
    IDEMPOTENCY_KEY,
    METRICS_KEY,
    STARTED_KEY,
    WATCHDOG_KEY,
)

# KTRDR-style timeframes accepted as an alternative to IB bar sizes
TIMEFRAMES = {
    "1s": "1 secs", "5s": "5 secs", "10s": "10 secs", "15s": "15 secs", "30s": "30 secs",
    "1m": "1 min", "2m": "2 mins", "3m": "3 mins", "5m": "5 mins", "10m": "10 mins",
    "15m": "15 mins", "20m": "20 mins", "30m": "30 mins", "1h": "1 hour", "2h": "2 hours",
    "3h": "3 hours", "4h": "4 hours", "8h": "8 hours", "1d": "1 day", "1w": "1 week",
    "1M": "1 month",
}
CONTRACT_FIELDS = ("symbol", "secType", "exchange", "currency", "primaryExchange",
                   "lastTradeDateOrContractMonth", "expiry", "strike", "right", "multiplier",
                   "localSymbol", "tradingClass", "conId")


def _contract(m: Any) -> dict[str, Any]:
    return {k: m[k] for k in CONTRACT_FIELDS if k in m and m[k] is not None}


def auth(request: web.Request, *, trading: bool = False) -> None:
    try:
        request.app[AUTH_KEY].check(request.headers.get("X-API-Key"), trading=trading)
    except IbhostError as e:
        reason = ("no_key_configured" if e.extra.get("guard") == "api_key" else
                  "missing" if e.code == "unauthorized" else "invalid")
        request.app[METRICS_KEY].auth_failures.labels(reason).inc()
        if e.extra.get("guard"):
            request.app[METRICS_KEY].guard_rejections.labels("api_key").inc()
        raise


async def connector(request: web.Request, method: str, path: str, *,
                    body: Any = None, params: dict[str, Any] | None = None) -> Any:
    return await request.app[CONNECTOR_KEY].request(method, path, json_body=body,
                                                   params=params)


# --- service ---------------------------------------------------------------------------

async def index(request: web.Request) -> web.Response:
    return web.json_response({
        "name": "ibhost", "version": __version__,
        "description": "Interactive Brokers API host service",
        "docs": "/docs", "openapi": "/openapi.json",
        "endpoints": sorted({f"{r.method} {r.resource.canonical}"
                             for r in request.app.router.routes()
                             if r.method != "HEAD" and r.resource is not None}),
    })


async def ping(request: web.Request) -> web.Response:
    return web.json_response({"pong": True, "time": time.time()})


def _health_response(h: dict[str, Any]) -> web.Response:
    status = 200 if h["status"] in ("ok", "degraded") else 503
    return web.json_response({**h, "healthy": status == 200}, status=status)


async def health(request: web.Request) -> web.Response:
    auth(request)
    watcher = request.app[HEALTH_KEY]
    live = opt_bool(request.query, "connect", False)
    h = await watcher.check() if live else watcher.cached()
    request.app[METRICS_KEY].set_health(h["status"])
    return _health_response(h)


async def health_detailed(request: web.Request) -> web.Response:
    auth(request)
    watcher = request.app[HEALTH_KEY]
    h = watcher.cached()
    detail: dict[str, Any] = {"gateway": {"status": "ok", "version": __version__,
                                          "uptimeSeconds": round(time.monotonic() -
                                                                 request.app[STARTED_KEY], 1)},
                              "health": h}
    if h["status"] in ("ok", "degraded", "down") and h.get("connector") is not None:
        try:
            detail["connector"] = await request.app[CONNECTOR_KEY].request(
                "GET", "/status", read_timeout=request.app[CONFIG_KEY].gateway.health_timeout)
        except Exception as e:  # reported, not raised: this page must always answer
            detail["connector"] = {"error": str(e)}
    return web.json_response(detail)


# --- data ------------------------------------------------------------------------------

async def historical(request: web.Request) -> web.StreamResponse:
    auth(request)
    fmt = formats.choose_format(request)
    body = await json_body(request, request.app[CONFIG_KEY].gateway.max_body)
    bar_size = opt_str(body, "barSize")
    timeframe = opt_str(body, "timeframe")
    if not bar_size and timeframe:
        if timeframe not in TIMEFRAMES:
            raise bad_request("timeframe", f"must be one of {', '.join(TIMEFRAMES)}")
        bar_size = TIMEFRAMES[timeframe]
    if not bar_size:
        raise bad_request("barSize", "is required (or timeframe, e.g. 1h)")
    if ibrules.bar_seconds(bar_size) is None:
        raise bad_request("barSize", f"must be one of {', '.join(ibrules.BAR_SIZES)}")
    fwd = {**_contract(body), "barSize": bar_size}
    for k in ("start", "end", "duration", "whatToShow", "useRTH", "priority"):
        if k in body:
            fwd[k] = body[k]
    result = await connector(request, "POST", "/historical", body=fwd)
    return await formats.respond(request, result, fmt)


async def validate(request: web.Request) -> web.Response:
    auth(request)
    body = await json_body(request, request.app[CONFIG_KEY].gateway.max_body)
    details = await connector(request, "POST", "/validate", body=_contract(body))
    return web.json_response({"success": True, "valid": True, **details})


async def head_timestamp(request: web.Request) -> web.Response:
    auth(request)
    q = dict(request.query)
    return web.json_response(await connector(request, "GET", "/head-timestamp", params=q))


async def option_chain(request: web.Request) -> web.Response:
    auth(request)
    return web.json_response(await connector(request, "GET", "/option-chain",
                                             params=dict(request.query)))


async def snapshot(request: web.Request) -> web.Response:
    auth(request)
    body = await json_body(request, request.app[CONFIG_KEY].gateway.max_body)
    extra: dict[str, Any] = {k: body[k] for k in ("genericTicks", "marketDataType", "wait")
                             if k in body}
    fwd = {**_contract(body), **extra}
    return web.json_response(await connector(request, "POST", "/snapshot", body=fwd))


# --- trading ---------------------------------------------------------------------------

ORDER_FIELDS = ("action", "quantity", "orderType", "limitPrice", "stopPrice", "tif",
                "outsideRth", "orderRef")


def _order_body(body: dict[str, Any]) -> dict[str, Any]:
    """Validate what the guards read; the connector validates the rest again."""
    opt_str(body, "action", upper=True, choices=("BUY", "SELL"))
    if "action" not in body:
        raise bad_request("action", "is required")
    if opt_float(body, "quantity", positive=True) is None:
        raise bad_request("quantity", "is required")
    opt_str(body, "orderType", "LMT", upper=True, choices=("MKT", "LMT", "STP", "STP LMT"))
    opt_float(body, "limitPrice", positive=True)
    opt_float(body, "stopPrice", positive=True)
    opt_str(body, "secType", "STK", upper=True)
    if not opt_str(body, "symbol") and not body.get("conId"):
        raise bad_request("symbol", "is required")
    return {**_contract(body), **{k: body[k] for k in ORDER_FIELDS if k in body}}


async def place_order(request: web.Request) -> web.Response:
    auth(request, trading=True)
    app = request.app
    body = await json_body(request, app[CONFIG_KEY].gateway.max_body)
    fwd = _order_body(body)
    raw_key = request.headers.get("Idempotency-Key")
    key = check_key(raw_key) if raw_key is not None else None
    if key is not None and not fwd.get("orderRef"):
        fwd["orderRef"] = key  # carried to IB, so a connector restart still dedupes

    async def price_of() -> float | None:
        snap = await connector(request, "POST", "/snapshot", body=_contract(fwd))
        for k in ("ask", "last", "close", "bid"):
            if snap.get(k):
                return float(snap[k])
        return None

    async def go() -> tuple[int, Any]:
        try:
            await guards.check_order(app[CONFIG_KEY].trading, fwd, price_of)
        except IbhostError as e:
            if "guard" in e.extra:
                app[METRICS_KEY].guard_rejections.labels(e.extra["guard"]).inc()
            raise
        result = await connector(request, "POST", "/orders", body=fwd)
        return (200 if result.get("duplicate") else 201), result

    if key is None:
        status, result = await go()
        return web.json_response(result, status=status)
    store = app[IDEMPOTENCY_KEY]
    fp = fingerprint(fwd)
    async with store.lock(key):
        prior = store.get(key, fp)
        if prior is not None:
            app[METRICS_KEY].idempotent_replays.inc()
            return web.json_response(prior["body"], status=prior["status"],
                                     headers={"Idempotent-Replayed": "true"})
        status, result = await go()
        await store.put(key, fp, status, result)
        return web.json_response(result, status=status)


async def cancel_order(request: web.Request) -> web.Response:
    auth(request, trading=True)
    order_id = request.match_info["orderId"]
    if not order_id.isdigit():
        raise bad_request("orderId", "must be a positive integer")
    return web.json_response(await connector(request, "DELETE", f"/orders/{order_id}"))


async def open_orders(request: web.Request) -> web.Response:
    auth(request)
    return web.json_response(await connector(request, "GET", "/orders"))


async def executions(request: web.Request) -> web.Response:
    auth(request)
    return web.json_response(await connector(request, "GET", "/executions",
                                             params=dict(request.query)))


async def positions(request: web.Request) -> web.Response:
    auth(request)
    return web.json_response(await connector(request, "GET", "/positions"))


# --- system ----------------------------------------------------------------------------

async def ib_status(request: web.Request) -> web.Response:
    auth(request)
    h = request.app[HEALTH_KEY].cached()
    c = h.get("connector") or {}
    return web.json_response({
        "success": True, "ib_connected": h["status"] in ("ok", "degraded"),
        "status": h["status"], "reason": h["reason"], "state": c.get("state"),
        "client_id": c.get("clientId"), "farms": c.get("farms"),
        "competing_session": c.get("competingSession"),
    })


async def system_status(request: web.Request) -> web.Response:
    auth(request)
    h = request.app[HEALTH_KEY].cached()
    try:
        wd = await request.app[WATCHDOG_KEY].request("GET", "/status", read_timeout=1.0)
        watchdog = {"status": "ok", "wakes": wd["wakesTotal"],
                    "maintenance": wd["maintenance"],
                    "restarts": {k: v["restartsTotal"] for k, v in wd["programs"].items()}}
    except Exception as e:  # reported, not raised
        watchdog = {"status": "down", "reason": str(e)}
    return web.json_response({
        "success": True,
        "programs": {
            "gateway": {"status": "ok", "version": __version__},
            "connector": {"status": h["status"], "reason": h["reason"]},
            "watchdog": watchdog,
        },
        "trading_enabled": request.app[CONFIG_KEY].trading.enabled,
    })


async def metrics(request: web.Request) -> web.Response:
    auth(request)
    from prometheus_client import CONTENT_TYPE_LATEST

    m = request.app[METRICS_KEY]
    m.set_health(request.app[HEALTH_KEY].cached()["status"])
    return web.Response(body=await m.exposition(),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Any


ROUTES: tuple[Route, ...] = (
    Route("GET", "/", index),
    Route("GET", "/ping", ping),
    Route("GET", "/health", health),
    Route("GET", "/health/detailed", health_detailed),
    Route("POST", "/data/historical", historical),
    Route("POST", "/data/validate", validate),
    Route("GET", "/data/head-timestamp", head_timestamp),
    Route("GET", "/options/chain", option_chain),
    Route("POST", "/market/snapshot", snapshot),
    Route("POST", "/orders", place_order),
    Route("GET", "/orders", open_orders),
    Route("DELETE", "/orders/{orderId}", cancel_order),
    Route("GET", "/executions", executions),
    Route("GET", "/positions", positions),
    Route("GET", "/api/v1/system/ib-status", ib_status),
    Route("GET", "/api/v1/system/system-status", system_status),
    Route("GET", "/metrics", metrics),
)
