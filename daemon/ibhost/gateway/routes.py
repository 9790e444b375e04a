"""The gateway's one route table: the paths every client shares (/, /ping, /health,
/livez, /readyz, /health/detailed, /metrics, the /status page), ibhost's own API under
/v1/, and the KTRDR and wheel-strat contracts at their own paths."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from aiohttp import web

from .. import __version__
from ..validate import opt_bool
from . import bridge, ktrdr, statuspage, v1
from .common import LIVE_PORTS, Route, auth, trusted
from .health import public
from .keys import CONFIG_KEY, HEALTH_KEY, METRICS_KEY, STARTED_KEY
from .metrics import without_trading_routes
from .streams import broker as stream_broker
from .streams import sse as stream_sse
from .streams import ws as stream_ws

# /health fields only a caller with a key sees once keys are configured: where IB is,
# which client id, IB's own error text, the connector's whole answer
KEYED_HEALTH_FIELDS = ("clientId", "host", "port", "lastIbErrorMessage", "connector")


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


async def index(request: web.Request) -> web.Response:
    return web.json_response({
        # KTRDR's clients and its own tests check this exact service name
        "service": "IB Connector Host Service", "name": "ibhost", "version": __version__,
        "status": "running",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        "description": "Interactive Brokers API host service",
        "docs": "/docs", "openapi": "/openapi.json",
        "endpoints": sorted({f"{r.method} {r.resource.canonical}"
                             for r in request.app.router.routes()
                             if r.method != "HEAD" and r.resource is not None}),
    })


async def ping(request: web.Request) -> web.Response:
    now = time.time()
    return web.json_response({"status": "ok", "timestamp": int(now * 1000), "pong": True,
                              "time": now})


def reason_for(request: web.Request, h: dict[str, Any]) -> str:
    """The health reason as this caller may read it: the connector's own words (they
    may name IB's host and port) with a key, fixed words without one."""
    return str(h["reason"] if trusted(request) else public(h)["reason"])


def health_body(request: web.Request, h: dict[str, Any]) -> dict[str, Any]:
    """One body with the fields KTRDR's provider, the wheel-strat clients and ibhost's
    own tools read; ``healthy``/``connected``/``ready`` are true only while IB is usable.
    Without a key (once keys are configured) the fields that name the connection are
    left out and the reason is in fixed words (docs/gateway.md, "What a key shows")."""
    cfg = request.app[CONFIG_KEY]
    c = h.get("connector") or {}
    ready = h["status"] in ("ok", "degraded")
    checked = _iso(h.get("checkedAt"))
    body = {
        "status": {"ok": "ok", "degraded": "degraded", "busy": "busy",
                   "maintenance": "maintenance"}.get(h["status"], "disconnected"),
        "healthy": ready, "connected": ready, "ready": ready,
        "state": c.get("state") or h["status"], "reason": h["reason"],
        "service": "ibhost", "version": __version__,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        "ib_status": {"connected": ready, "connection_count": 1 if ready else 0},
        "connection_info": {"service_running": True, "last_check": checked},
        "clientId": c.get("clientId"), "host": cfg.ib.host, "port": cfg.ib.port,
        "clientType": "gateway",
        "tradingMode": "live" if cfg.ib.port in LIVE_PORTS else "paper",
        **{k: c.get(k) for k in ("lastHeartbeatAt", "lastIbErrorCode", "lastIbErrorMessage",
                                 "lastIbErrorAt", "reconnectAttempts", "heartbeatFailures",
                                 "lastDisconnectAt", "competingSession", "farms")},
        "ibhostStatus": h["status"], "connector": h.get("connector"), "checkedAt":
        h.get("checkedAt"),
    }
    if not trusted(request):
        body["reason"] = reason_for(request, h)
        for k in KEYED_HEALTH_FIELDS:
            del body[k]
    return body


async def health(request: web.Request) -> web.Response:
    """200 (both services ibhost replaces answer 200); the body tells the truth. Only a
    ``connect`` that is not a boolean is a 400, in the bridge's error shape.
    Probes that need a failing status code use /readyz or /v1/health."""
    watcher = request.app[HEALTH_KEY]
    live = opt_bool(request.query, "connect", False)
    h = await watcher.check() if live else watcher.cached()
    request.app[METRICS_KEY].set_health(h["status"])
    return web.json_response(health_body(request, h))


async def ktrdr_health(request: web.Request) -> web.Response:
    """KTRDR's ``GET /health/`` (its health router's HealthResponse): the service is
    running (``healthy``), and whether IB is usable in ``ib_status``."""
    h = request.app[HEALTH_KEY].cached()
    ready = h["status"] in ("ok", "degraded")
    now = dt.datetime.now(dt.UTC).isoformat()
    return web.json_response({
        "healthy": True, "service": "ib-connector", "timestamp": now,
        "ib_status": {"connected": ready, "connection_count": 1 if ready else 0},
        "connection_info": {"service_running": True,
                            "last_check": _iso(h.get("checkedAt")) or now},
        "error": None if ready else reason_for(request, h)})


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    h = request.app[HEALTH_KEY].cached()
    ready = h["status"] in ("ok", "degraded")
    return web.json_response({"status": h["status"], "reason": reason_for(request, h),
                              "ready": ready},
                             status=200 if ready else 503)


async def health_detailed(request: web.Request) -> web.Response:
    """KTRDR's DetailedHealthResponse fields, then ibhost's own detail."""
    auth(request)
    full = trusted(request)
    detail = await v1.detailed(request) if full else {
        "health": {k: v for k, v in public(request.app[HEALTH_KEY].cached()).items()
                   if k in ("status", "reason", "checkedAt")}}
    h = detail["health"]
    c = h.get("connector") or {}
    m = request.app[METRICS_KEY]
    ready = h["status"] in ("ok", "degraded")
    return web.json_response({
        "healthy": ready, "service": "ibhost",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        "ib_gateway_connected": ready, "active_connections": 1 if ready else 0,
        "total_requests": m.requests_total, "error_count": m.errors_total,
        "last_error": (c.get("lastIbErrorMessage") if full else None) or (
            None if ready else h["reason"]),
        "uptime_seconds": round(time.monotonic() - request.app[STARTED_KEY], 1),
        "connection_pool_status": {"total_connections": 1 if ready else 0,
                                   "max_connections": 1, "pool_initialized": True},
        **detail,
    })


async def metrics(request: web.Request) -> web.Response:
    auth(request)
    from prometheus_client import CONTENT_TYPE_LATEST

    m = request.app[METRICS_KEY]
    m.set_health(request.app[HEALTH_KEY].cached()["status"])
    body = await m.exposition()
    if not trusted(request):  # still scrapeable without a key; no order traffic
        body = without_trading_routes(body)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


SHARED: tuple[Route, ...] = (
    Route("GET", "/", index),
    Route("GET", "/ping", ping),
    # its errors in the bridge's shape: a 400 for connect=<not a boolean> is the only one
    Route("GET", "/health", health, "bridge"),
    Route("GET", "/livez", livez),
    Route("GET", "/readyz", readyz),
    Route("GET", "/health/", ktrdr_health, "ktrdr"),
    Route("GET", "/health/detailed", health_detailed, "ktrdr"),
    Route("GET", "/metrics", metrics),
    Route("GET", "/status", statuspage.status_page),
)

STREAMS: tuple[Route, ...] = (
    Route("GET", "/v1/stream", stream_sse.sse),
    Route("GET", "/v1/stream/ws", stream_ws.websocket),
    Route("GET", "/v1/streams", stream_broker.streams_status),
)

ROUTES: tuple[Route, ...] = (SHARED + v1.ROUTES + STREAMS + ktrdr.ROUTES
                             + bridge.ROUTES)
