"""``init_app(config)``: the gateway's aiohttp application."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from ..config import Config
from ..connector.client import ConnectorClient
from ..errors import IbhostError, bad_header, code_for_http_status
from ..ipc import IpcError
from ..ipc.client import UnixClient
from . import openapi
from .auth import Authenticator, is_loopback, load_keys
from .common import AGE_HEADER, Route, as_error, auth
from .cors import ORIGINS_KEY, allow_origin, preflight
from .health import HealthWatcher
from .idempotency import IdempotencyStore
from .keys import (
    AGE_RKEY,
    AUTH_KEY,
    CONFIG_KEY,
    CONNECTOR_KEY,
    GAPFILL_KEY,
    HEALTH_KEY,
    IDEMPOTENCY_KEY,
    LOGS_KEY,
    METRICS_KEY,
    REQUEST_ID_RKEY,
    STARTED_KEY,
    WATCHDOG_KEY,
)
from .ktrdr import KNOWN_KEY
from .logbuffer import LogBuffer
from .metrics import GatewayMetrics
from .routes import ROUTES
from .streams import broker as stream_broker

log = logging.getLogger("ibhost.gateway")
FAMILIES_KEY = web.AppKey("families", dict)
SEGMENTS_KEY = web.AppKey("segment_families", dict)
HOSTS_KEY: web.AppKey[set[str] | None] = web.AppKey("hosts")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _route_label(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None:
        return "unmatched"
    resource = getattr(info.route, "resource", None)
    return "unmatched" if resource is None else str(resource.canonical)


def _render(err: IbhostError, family: str) -> web.Response:
    """The error body in the shape the route's clients read."""
    if family == "ktrdr":  # FastAPI's shapes: 422 with a list for invalid input
        if err.code == "bad_request":
            where = err.extra.get("in", "body")  # FastAPI's loc: ["header", name] too
            detail: Any = [{"loc": [where, err.field or "body"], "msg": err.message,
                            "type": "value_error"}]
            return web.json_response({"detail": detail, **err.to_dict()}, status=422)
        return web.json_response({"detail": err.message, **err.to_dict()}, status=err.status)
    if family == "bridge":  # the bridge's {"error": "<text>"}
        body: dict[str, Any] = {"error": err.message, "code": err.code}
        status = err.status
        if err.field == "X-API-Key" and err.code in ("unauthorized", "forbidden"):
            body["error"], status = "Unauthorized", 401
            body["message"] = err.message
        elif err.code == "unavailable":
            body.update(error="Bridge busy", reason="not-ready", message=err.message)
        for k in ("field", "ib_code"):
            v = getattr(err, k)
            if v is not None:
                body[k] = v
        body.update({k: v for k, v in err.extra.items() if k not in body})
        return web.json_response(body, status=status)
    return web.json_response(err.to_dict(), status=err.status)


def _segment(path: str) -> str:
    return path.split("/", 2)[1] if path.startswith("/") else ""


def _family(request: web.Request) -> str:
    """The family of the matched route; for a path no route took (404, 405) the family
    of the routes under its first segment (/data/... is KTRDR's, /market-data/... the
    bridge's), so that answer too is in the shape its clients read."""
    info = request.match_info
    resource = getattr(info.route, "resource", None) if info.http_exception is None else None
    if resource is None:
        return request.app[SEGMENTS_KEY].get(_segment(request.path), "ibhost")
    return request.app[FAMILIES_KEY].get((request.method, str(resource.canonical)), "ibhost")


def _segment_families(routes: Iterable[Route]) -> dict[str, str]:
    """First path segment -> family, where every route under it is of one family."""
    seen: dict[str, set[str]] = {}
    for r in routes:
        seen.setdefault(_segment(r.path), set()).add(r.family)
    return {seg: fams.pop() for seg, fams in seen.items() if len(fams) == 1 and seg}


def _http_error(e: web.HTTPException, request: web.Request) -> web.Response:
    """An error aiohttp raised before any handler ran (404, 405, 413 ...), in the
    family's shape: FastAPI's {"detail": "Not Found"} on KTRDR's paths, the bridge's
    {"error": "<text>"} on its own, ibhost's catalogue elsewhere."""
    code = code_for_http_status(e.status)
    family = _family(request)
    if family == "ktrdr":
        resp = web.json_response({"detail": e.reason}, status=e.status)
    elif family == "bridge":
        resp = web.json_response({"error": e.reason, "code": code}, status=e.status)
    else:
        msg = {404: "no such route", 405: f"method {request.method} not allowed here"}.get(
            e.status, e.reason)
        resp = web.json_response({"error": {"code": code, "message": msg}}, status=e.status)
    if "Allow" in e.headers:  # 405 says which methods the route takes
        resp.headers["Allow"] = e.headers["Allow"]
    return resp


LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "host.docker.internal"}


@web.middleware
async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A gateway on a loopback address answers only to loopback names (and the
    configured ``gateway.allowed_hosts``): a web page that rebinds its own name to
    127.0.0.1 gets 421, not the account (DNS rebinding)."""
    allowed: set[str] | None = request.app[HOSTS_KEY]
    if allowed is not None:
        host = (request.host or "").rsplit(":", 1)[0] if not (request.host or "").startswith(
            "[") else (request.host or "")[1:].split("]", 1)[0]
        if host.lower() not in allowed:  # observe answers it in the family's shape
            raise IbhostError("misdirected", f"Host {host!r} is not a name of this "
                              "gateway (add it to gateway.allowed_hosts)", field="Host")
    return await handler(request)


# What a caller reaching a non-loopback address (a container, through a Docker
# bridge) may ask without a key: the probes, whose keyless answers name nothing
KEYLESS_REMOTE = frozenset({"/ping", "/livez", "/readyz", "/health", "/health/"})


@web.middleware
async def remote_needs_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Requests that arrive on a non-loopback address need a valid key, reads too
    (loopback keeps ``gateway.reads_need_key``)."""
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    if sock and not is_loopback(str(sock[0])) and request.path not in KEYLESS_REMOTE \
            and request.method != "OPTIONS":
        auth(request, always=True)
    return await handler(request)


# Every request header the gateway reads. aiohttp decodes header bytes as UTF-8 with
# surrogateescape, so a byte like 0xff arrives as a lone surrogate that fails later
# (str.encode, sqlite, logging): refuse it here, naming the header.
READ_HEADERS = ("Host", "X-API-Key", "Authorization", "Idempotency-Key", "X-Timeout",
                "Accept")


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@web.middleware
async def check_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A 400 naming the header for one the gateway reads that is not valid UTF-8."""
    for name in READ_HEADERS:
        for value in request.headers.getall(name, ()):
            if not _utf8(value):
                raise bad_header(name, "is not valid UTF-8")
    return await handler(request)


def _request_id(request: web.Request) -> str:
    """The caller's X-Request-ID when it is printable ASCII (it is echoed and logged),
    else a fresh one."""
    given = request.headers.get("X-Request-ID", "")[:64]
    return given if given and given.isascii() and given.isprintable() else (
        uuid.uuid4().hex[:12])


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, latency metric, and every failure as JSON in the route family's shape."""
    rid = _request_id(request)
    request[REQUEST_ID_RKEY] = rid  # streamed answers set it before their headers go out
    t0 = time.perf_counter()
    try:
        resp = await handler(request)
    except (IbhostError, IpcError) as e:
        err = as_error(e)
        assert err is not None
        resp = _render(err, _family(request))
        if err.code == "request_timeout":
            resp.force_close()  # the body's framing is lost: this connection is done
    except web.HTTPException as e:
        if e.status < 400:
            raise
        resp = _http_error(e, request)
    except Exception:
        log.exception("unexpected error (request %s) on %s %s", rid, request.method,
                      request.path)
        resp = web.json_response({"error": {"code": "internal", "message":
                                            f"unexpected error; request id {rid}"}},
                                 status=500)
    if not resp.prepared:
        resp.headers["X-Request-ID"] = rid
    m = request.app[METRICS_KEY]
    m.requests_total += 1
    if resp.status >= 400:
        m.errors_total += 1
    m.request_seconds.labels(_route_label(request), request.method, str(resp.status)).observe(
        time.perf_counter() - t0)
    return resp


def _scrape(client: ConnectorClient | UnixClient) -> Callable[[float], Awaitable[str]]:
    """A program's /metrics over its socket, within a timeout."""
    if isinstance(client, ConnectorClient):
        return lambda timeout: client.metrics(read_timeout=timeout)
    return lambda timeout: client.request_text("GET", "/metrics", read_timeout=timeout)


async def _clients(app: web.Application) -> AsyncIterator[None]:
    watcher = app[HEALTH_KEY]
    app[LOGS_KEY].attach()
    watcher.start()
    yield
    app[LOGS_KEY].detach()
    await watcher.stop()
    await app[CONNECTOR_KEY].close()
    await watcher.client.close()
    await app[WATCHDOG_KEY].close()
    await app[GAPFILL_KEY].close()
    await app[IDEMPOTENCY_KEY].close()


async def state_age(request: web.Request, response: web.StreamResponse) -> None:
    """An answer read from the connection's state or a cache says how old it is
    (a header, so every family's body keeps its shape)."""
    age = request.get(AGE_RKEY)
    if age is not None and response.status < 400:
        response.headers[AGE_HEADER] = f"{age:.1f}"


def init_app(cfg: Config) -> web.Application:
    app = web.Application(middlewares=[observe, check_headers, check_host, remote_needs_key,
                                       preflight],
                          client_max_size=cfg.gateway.max_body)
    app[ORIGINS_KEY] = frozenset(cfg.gateway.cors_origins)
    app.on_response_prepare.append(allow_origin)
    app.on_response_prepare.append(state_age)
    app[SEGMENTS_KEY] = _segment_families(ROUTES)
    app[HOSTS_KEY] = ({*LOOPBACK_NAMES, cfg.gateway.host.lower(),
                       *(b.lower() for b in cfg.gateway.bind),
                       *(h.lower() for h in cfg.gateway.allowed_hosts)}
                      if is_loopback(cfg.gateway.host) else None)
    app[CONFIG_KEY] = cfg
    app[STARTED_KEY] = time.monotonic()
    app[LOGS_KEY] = LogBuffer()
    app[AUTH_KEY] = Authenticator(load_keys(cfg), cfg.gateway.reads_need_key)
    sock = str(cfg.connector_socket)
    app[CONNECTOR_KEY] = ConnectorClient(sock, read_timeout=cfg.gateway.connector_timeout)
    health_client = ConnectorClient(sock, connect_timeout=cfg.gateway.health_timeout,
                                    read_timeout=cfg.gateway.health_timeout)
    app[HEALTH_KEY] = HealthWatcher(health_client, cfg.gateway.health_timeout)
    app[IDEMPOTENCY_KEY] = IdempotencyStore(cfg.path(cfg.gateway.idempotency_file),
                                            keep=cfg.gateway.idempotency_keep,
                                            max_rows=cfg.gateway.idempotency_max_keys)
    watchdog = UnixClient(str(cfg.path(cfg.watchdog.socket)), connect_timeout=1.0,
                          read_timeout=1.0)
    app[WATCHDOG_KEY] = watchdog
    gapfill = UnixClient(str(cfg.path(cfg.gapfill.socket)), connect_timeout=1.0,
                         read_timeout=cfg.gateway.connector_timeout)
    app[GAPFILL_KEY] = gapfill
    app[METRICS_KEY] = GatewayMetrics([(r.method, r.path) for r in ROUTES],
                                      {"connector": _scrape(health_client),
                                       "watchdog": _scrape(watchdog),
                                       "gapfill": _scrape(gapfill)})
    app[FAMILIES_KEY] = {(r.method, r.path): r.family for r in ROUTES}
    app[KNOWN_KEY] = {}
    for r in ROUTES:  # every GET answers HEAD as well (the bridge's Flask did)
        if r.method == "GET":
            app.router.add_get(r.match or r.path, r.handler)
        else:
            app.router.add_route(r.method, r.match or r.path, r.handler)
    app.router.add_get("/openapi.json", openapi.spec_handler)
    app.router.add_get("/docs", openapi.docs_handler)
    app.router.add_get("/redoc", openapi.docs_handler)  # FastAPI's second docs path
    app.cleanup_ctx.append(_clients)
    stream_broker.install(app, cfg)
    return app
