"""``init_app(config)``: the gateway's aiohttp application."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from ..config import Config
from ..errors import IbhostError, code_for_http_status
from ..ipc import IpcError, UnixClient
from . import openapi
from .auth import Authenticator, load_keys
from .health import HealthWatcher
from .idempotency import IdempotencyStore
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
from .metrics import GatewayMetrics
from .routes import ROUTES

log = logging.getLogger("ibhost.gateway")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _route_label(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None:
        return "unmatched"
    resource = getattr(info.route, "resource", None)
    return "unmatched" if resource is None else str(resource.canonical)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, latency metric, and every failure as catalogue JSON."""
    rid = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex[:12]
    t0 = time.perf_counter()
    try:
        resp = await handler(request)
    except IbhostError as e:
        resp = web.json_response(e.to_dict(), status=e.status)
    except IpcError as e:
        if e.timeout:
            err = IbhostError("timeout", "the connector did not answer in time")
        else:
            err = IbhostError("unavailable", "the connector is not running",
                              extra={"state": "down"})
        resp = web.json_response(err.to_dict(), status=err.status)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = code_for_http_status(e.status)
        msg = {404: "no such route", 405: f"method {request.method} not allowed here"}.get(
            e.status, e.reason)
        resp = web.json_response({"error": {"code": code, "message": msg}}, status=e.status)
    except Exception:
        log.exception("unexpected error (request %s) on %s %s", rid, request.method,
                      request.path)
        resp = web.json_response({"error": {"code": "internal", "message":
                                            f"unexpected error; request id {rid}"}},
                                 status=500)
    resp.headers["X-Request-ID"] = rid
    request.app[METRICS_KEY].request_seconds.labels(
        _route_label(request), request.method, str(resp.status)).observe(
            time.perf_counter() - t0)
    return resp


async def _clients(app: web.Application) -> AsyncIterator[None]:
    watcher = app[HEALTH_KEY]
    watcher.start()
    yield
    await watcher.stop()
    await app[CONNECTOR_KEY].close()
    await watcher.client.close()
    await app[WATCHDOG_KEY].close()


def init_app(cfg: Config) -> web.Application:
    app = web.Application(middlewares=[observe], client_max_size=cfg.gateway.max_body)
    app[CONFIG_KEY] = cfg
    app[STARTED_KEY] = time.monotonic()
    app[AUTH_KEY] = Authenticator(load_keys(cfg), cfg.gateway.reads_need_key)
    sock = str(cfg.connector_socket)
    app[CONNECTOR_KEY] = UnixClient(sock, read_timeout=cfg.gateway.connector_timeout)
    health_client = UnixClient(sock, connect_timeout=cfg.gateway.health_timeout,
                               read_timeout=cfg.gateway.health_timeout)
    app[HEALTH_KEY] = HealthWatcher(health_client, cfg.gateway.health_timeout)
    app[IDEMPOTENCY_KEY] = IdempotencyStore(cfg.path(cfg.gateway.idempotency_file))
    watchdog = UnixClient(str(cfg.path(cfg.watchdog.socket)), connect_timeout=1.0,
                          read_timeout=1.0)
    app[WATCHDOG_KEY] = watchdog
    app[METRICS_KEY] = GatewayMetrics([r.path for r in ROUTES],
                                      {"connector": health_client, "watchdog": watchdog})
    for r in ROUTES:
        app.router.add_route(r.method, r.path, r.handler)
    app.router.add_get("/openapi.json", openapi.spec_handler)
    app.router.add_get("/docs", openapi.docs_handler)
    app.cleanup_ctx.append(_clients)
    return app
