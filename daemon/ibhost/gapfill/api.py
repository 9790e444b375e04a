"""The gap-filler's control socket (``run/gapfill.sock``): /health, /status,
POST /scan (now; optionally ``{"files": [...]}``), /metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import bad_request
from ..ipc.server import Handler, Reply, Request, json_reply
from .core import GapFiller
from .store import parse_name


def routes(filler: GapFiller) -> dict[tuple[str, str], Handler]:
    """gapfill.sock's route table."""

    async def health(request: Request) -> Reply:
        return json_reply({"status": "ok", "waitingFor": filler.waiting_for,
                           "lastScanAt": (filler.last_scan or {}).get("at")})

    async def status(request: Request) -> Reply:
        return json_reply(filler.status())

    async def scan(request: Request) -> Reply:
        files = request.json().get("files")
        if files is not None:
            if not isinstance(files, list) or len(files) > 1000 or not all(
                    isinstance(n, str) and parse_name(n) for n in files):
                raise bad_request("files", "must be a list of file names like AAPL_1h.csv")
        return json_reply(await filler.scan(files or None))

    async def metrics(request: Request) -> Reply:
        return Reply(body=filler.metrics.exposition(), content_type=CONTENT_TYPE_LATEST)

    return {("GET", "/health"): health, ("GET", "/status"): status,
            ("POST", "/scan"): scan, ("GET", "/metrics"): metrics}
