"""CORS for the origins named in ``gateway.cors_origins``, and OPTIONS on every route.

A browser page may read the gateway only when its origin is listed: the default list
is empty, so a page on any site cannot read a local gateway (the ``Host`` check
keeps protecting against DNS rebinding as well). wheel-strat's web build
(``expo start --web``) calls the bridge's paths from the browser with ``X-API-KEY``:
list its origin (``http://localhost:8081``) to let it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ..errors import IbhostError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ORIGINS_KEY = web.AppKey("cors_origins", frozenset)

# what a page may send and read (the API key, idempotency and deadlines; the
# request id, the replay markers, Retry-After and the pagination of answers)
ALLOW_HEADERS = "Content-Type, X-API-Key, Idempotency-Key, X-Timeout, X-Request-ID, " \
                "Last-Event-ID"
EXPOSE_HEADERS = "X-Request-ID, Idempotent-Replayed, Idempotent-Stale, Retry-After, " \
                 "X-Ibhost-State-Age"
MAX_AGE = "600"


def _methods(request: web.Request) -> set[str]:
    """The methods the requested path takes (empty: no such path). No route takes
    OPTIONS, so the router's own answer names them: a 405 with its allowed methods."""
    exc = request.match_info.http_exception
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return set(exc.allowed_methods)
    return set() if exc is not None else {request.method}


def _allow(methods: set[str]) -> str:
    return ", ".join(sorted(methods | {"OPTIONS"}))


@web.middleware
async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """OPTIONS on any path a route takes: 204 with ``Allow``; a CORS preflight from a
    listed origin also gets what it may send; one from another origin is a 403."""
    if request.method != "OPTIONS":
        return await handler(request)
    methods = _methods(request)
    if not methods:
        raise web.HTTPNotFound()
    origin = request.headers.get("Origin")
    headers = {"Allow": _allow(methods)}
    if origin is not None and request.headers.get("Access-Control-Request-Method"):
        if origin not in request.app[ORIGINS_KEY]:
            raise IbhostError("forbidden", f"origin {origin!r} is not in "
                              "gateway.cors_origins", field="Origin")
        headers.update({
            "Access-Control-Allow-Methods": _allow(methods),
            "Access-Control-Allow-Headers": request.headers.get(
                "Access-Control-Request-Headers", ALLOW_HEADERS),
            "Access-Control-Max-Age": MAX_AGE})
    return web.Response(status=204, headers=headers)


async def allow_origin(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer to a listed origin says it may read it,
    errors and streamed answers included (they are prepared here too)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin in request.app[ORIGINS_KEY]:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response.headers["Vary"] = "Origin"
