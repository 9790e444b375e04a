"""The gap-filler's control socket (``run/gapfill.sock``): /health, /status,
POST /scan (now; optionally ``{"files": [...]}``), /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import IbhostError, bad_request
from ..validate import json_body
from .core import GapFiller
from .store import parse_name

FILLER_KEY = web.AppKey("filler", GapFiller)


@web.middleware
async def errors(request: web.Request,
                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> web.StreamResponse:
    try:
        return await handler(request)
    except IbhostError as e:
        return web.json_response(e.to_dict(), status=e.status)


async def health(request: web.Request) -> web.Response:
    f = request.app[FILLER_KEY]
    return web.json_response({"status": "ok", "waitingFor": f.waiting_for,
                              "lastScanAt": (f.last_scan or {}).get("at")})


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[FILLER_KEY].status())


async def scan(request: web.Request) -> web.Response:
    body = await json_body(request)
    files = body.get("files")
    if files is not None:
        if not isinstance(files, list) or len(files) > 1000 or not all(
                isinstance(n, str) and parse_name(n) for n in files):
            raise bad_request("files", "must be a list of file names like AAPL_1h.csv")
    return web.json_response(await request.app[FILLER_KEY].scan(files or None))


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[FILLER_KEY].metrics.exposition(),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def init_app(filler: GapFiller) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=1 << 20)
    app[FILLER_KEY] = filler
    app.router.add_get("/health", health)
    app.router.add_get("/status", status)
    app.router.add_post("/scan", scan)
    app.router.add_get("/metrics", metrics)
    return app
