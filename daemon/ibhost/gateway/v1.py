"""ibhost's own API under /v1/: catalogue errors, 503 from /v1/health when IB is not
usable, columnar/records/CSV bars, Idempotency-Key on orders."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from aiohttp import web

from .. import __version__, models
from ..asks import Historical, Snapshot
from ..errors import IbhostError, bad_request
from ..ipc import IpcError
from ..tree import programs
from ..validate import opt_bool
from . import formats, orders, system
from .common import (
    Route,
    as_error,
    auth,
    connector,
    contract,
    deadline_of,
    request_body,
    trusted,
)
from .health import public
from .keys import (
    CONFIG_KEY,
    CONNECTOR_KEY,
    GAPFILL_KEY,
    HEALTH_KEY,
    METRICS_KEY,
    REQUEST_ID_RKEY,
    STARTED_KEY,
    WATCHDOG_KEY,
)

# --- health ----------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    """ok / degraded answer 200; down / busy 503 (for probes that need a status code)."""
    auth(request)
    watcher = request.app[HEALTH_KEY]
    live = opt_bool(request.query, "connect", False)
    h = await watcher.check() if live else watcher.cached()
    request.app[METRICS_KEY].set_health(h["status"])
    status = 200 if h["status"] in ("ok", "degraded") else 503
    if not trusted(request):
        h = public(h)
    return web.json_response({**h, "healthy": status == 200}, status=status)


async def detailed(request: web.Request) -> dict[str, Any]:
    """The gateway, the cached health and the connector's full status."""
    h = request.app[HEALTH_KEY].cached()
    detail: dict[str, Any] = {"gateway": {"status": "ok", "version": __version__,
                                          "uptimeSeconds": round(time.monotonic() -
                                                                 request.app[STARTED_KEY], 1)},
                              "health": h}
    cfg = request.app[CONFIG_KEY]
    limit = cfg.gateway.health_timeout

    async def connector() -> dict[str, Any] | None:
        if h["status"] not in ("ok", "degraded", "down") or h.get("connector") is None:
            return None
        try:
            return await request.app[CONNECTOR_KEY].status(read_timeout=limit)
        except Exception as e:  # reported, not raised: this page must always answer
            return {"error": str(e)}

    async def supervised() -> dict[str, Any]:
        try:
            return await asyncio.wait_for(asyncio.to_thread(programs, cfg.home), limit)
        except TimeoutError:
            return {"error": f"supervisord did not answer in {limit:g}s"}

    async def watchdog() -> dict[str, Any]:
        try:
            wd = await request.app[WATCHDOG_KEY].request("GET", "/status",
                                                         read_timeout=limit)
        except Exception as e:
            return {"status": "down", "error": str(e)}
        return {"status": "ok", "maintenance": wd.get("maintenance"),
                "outage": wd.get("outage"), "escalations": wd.get("escalations"),
                "wakesTotal": wd.get("wakesTotal"),
                "probes": wd.get("programs")}

    con, progs, wd = await asyncio.gather(connector(), supervised(), watchdog())
    if con is not None:
        detail["connector"] = con
    detail["programs"] = progs
    detail["watchdog"] = wd
    return detail


async def health_detailed(request: web.Request) -> web.Response:
    """Diagnostics name the account, the home path and the configuration: once keys
    are configured, only a caller with one sees them (others get the status)."""
    auth(request)
    if not trusted(request):
        h = public(request.app[HEALTH_KEY].cached())
        return web.json_response({"health": {"status": h["status"], "reason": h["reason"]},
                                  "detail": "send X-API-Key for the diagnostics"})
    return web.json_response(await detailed(request))


# --- data ------------------------------------------------------------------------------

async def historical(request: web.Request) -> web.StreamResponse:
    auth(request)
    fmt = formats.choose_format(request)
    fwd = Historical.read(await request_body(request)).body()
    if fmt == "json":  # columnar, built by the connector: relayed as bytes
        raw = await connector(request).historical_bytes({**fwd, "columns": True})
        return web.Response(body=raw, content_type="application/json")
    lines = connector(request).historical_lines(fwd)
    try:
        head = await anext(lines)  # errors before the first byte are ordinary answers
        return await formats.stream(request, head, lines, fmt,
                                    request.get(REQUEST_ID_RKEY, ""))
    finally:
        await lines.aclose()


async def validate(request: web.Request) -> web.Response:
    auth(request)
    body = await request_body(request)
    details = await connector(request).validate(contract(body))
    return web.Response(body=models.encode(models.Validated(
        **msgspec.structs.asdict(details), success=True, valid=True)),
        content_type="application/json")


def relayed(raw: bytes) -> web.Response:
    """The connector's JSON answer, sent on as it came."""
    return web.Response(body=raw, content_type="application/json")


async def head_timestamp(request: web.Request) -> web.Response:
    auth(request)
    return relayed(await connector(request).relay("head_timestamp",
                                                  params=dict(request.query)))


async def option_chain(request: web.Request) -> web.Response:
    auth(request)
    return relayed(await connector(request).relay("option_chain",
                                                  params=dict(request.query)))


async def snapshot(request: web.Request) -> web.Response:
    auth(request)
    fwd = Snapshot.read(await request_body(request)).body()
    return relayed(await connector(request).relay("snapshot", body=fwd))


# --- trading and account ---------------------------------------------------------------

async def place_order(request: web.Request) -> web.Response:
    auth(request, trading=True)
    body = await request_body(request)
    fwd = orders.fields(body)
    fwd["dedupe"] = True  # /v1/ orders always dedupe on orderRef
    out = await orders.submit(request, fwd, request.headers.get("Idempotency-Key"))
    return web.json_response(out.body, status=out.status, headers=out.headers)


async def cancel_order(request: web.Request) -> web.Response:
    auth(request, trading=True)
    order_id = request.match_info["orderId"]
    if not (order_id.isascii() and order_id.isdigit()) or len(order_id) > 10:
        raise bad_request("orderId", "must be a positive integer")
    return relayed(await connector(request).relay("cancel_order", orderId=order_id))


def _relay(name: str) -> Any:
    """An account read relayed from the connector as its bytes: once keys are
    configured, account data needs one (X-API-Key), whatever reads_need_key says."""
    async def handler(request: web.Request) -> web.Response:
        auth(request, always=True)
        return relayed(await connector(request).relay(name, params=dict(request.query)))

    handler.__name__ = "relay_" + name
    return handler


# --- system ----------------------------------------------------------------------------

async def ib_status(request: web.Request) -> web.Response:
    auth(request)
    h = request.app[HEALTH_KEY].cached()
    if not trusted(request):  # no client id, reason in fixed words
        h = {**public(h), "connector": {k: (h.get("connector") or {}).get(k)
                                        for k in ("state", "farms", "competingSession")}}
    c = h.get("connector") or {}
    return web.json_response({
        "success": True, "ib_connected": h["status"] in ("ok", "degraded"),
        "status": h["status"], "reason": h["reason"], "state": c.get("state"),
        "client_id": c.get("clientId"), "farms": c.get("farms"),
        "competing_session": c.get("competingSession"),
    })


async def system_status(request: web.Request) -> web.Response:
    auth(request)
    return web.json_response(await system.programs_status(request))


# --- the gap-filler ---------------------------------------------------------------------

async def gapfill_status(request: web.Request) -> web.Response:
    """The gap-filler's status; the data directory's absolute path only with a key."""
    auth(request)
    try:
        status: dict[str, Any] = await request.app[GAPFILL_KEY].request(
            "GET", "/status", read_timeout=5.0)
    except IpcError as e:
        raise IbhostError("unavailable", "the gap-filler is not running",
                          extra={"program": "gapfill"}) from e
    if not trusted(request):
        status.pop("dataDir", None)
    return web.json_response(status)


async def gapfill_scan(request: web.Request) -> web.Response:
    """Scan now (optionally ``{"files": [...]}``) and answer what the scan did. It sets
    IB requests going: a key is needed once keys are configured."""
    auth(request, always=True)
    body = await request_body(request)
    try:
        return web.json_response(await request.app[GAPFILL_KEY].request(
            "POST", "/scan", json_body=body, deadline=deadline_of(request)))
    except IpcError as e:
        err = as_error(e)
        assert err is not None
        if not e.timeout:
            err = IbhostError("unavailable", "the gap-filler is not running",
                              extra={"program": "gapfill"})
        raise err from e


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/health", health),
    Route("GET", "/v1/health/detailed", health_detailed),
    Route("POST", "/v1/data/historical", historical),
    Route("POST", "/v1/data/validate", validate),
    Route("GET", "/v1/data/head-timestamp", head_timestamp),
    Route("GET", "/v1/options/chain", option_chain),
    Route("POST", "/v1/market/snapshot", snapshot),
    Route("POST", "/v1/orders", place_order),
    Route("GET", "/v1/orders", _relay("open_orders")),
    Route("DELETE", "/v1/orders/{orderId}", cancel_order),
    Route("GET", "/v1/executions", _relay("executions")),
    Route("GET", "/v1/positions", _relay("positions")),
    Route("GET", "/v1/portfolio", _relay("portfolio")),
    Route("GET", "/v1/account/summary", _relay("account_summary")),
    Route("GET", "/v1/pnl", _relay("pnl")),
    Route("GET", "/v1/system/ib-status", ib_status),
    Route("GET", "/v1/system/system-status", system_status),
    Route("GET", "/v1/gapfill/status", gapfill_status),
    Route("POST", "/v1/gapfill/scan", gapfill_scan),
    # KTRDR's system pages, in KTRDR's shapes
    *system.ROUTES,
)
