"""Historical bars as columnar JSON (default), records or CSV; large answers stream."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..errors import bad_request

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "wap", "count")
FORMATS = ("json", "records", "csv")
STREAM_OVER = 5000  # bars
CHUNK = 2000


def choose_format(request: web.Request) -> str:
    fmt = request.query.get("format", "")
    if fmt:
        if fmt not in FORMATS:
            raise bad_request("format", f"must be one of {', '.join(FORMATS)}")
        return fmt
    accept = request.headers.get("Accept", "")
    if "text/csv" in accept:
        return "csv"
    return "json"


def _head(result: dict[str, Any]) -> dict[str, Any]:
    return {"success": True, **{k: v for k, v in result.items() if k != "bars"},
            "count": len(result["bars"])}


def _csv_rows(bars: list[dict[str, Any]]) -> str:
    return "".join(",".join("" if b.get(c) is None else str(b.get(c)) for c in COLUMNS) + "\n"
                   for b in bars)


async def respond(request: web.Request, result: dict[str, Any], fmt: str) -> web.StreamResponse:
    bars: list[dict[str, Any]] = result["bars"]
    if fmt == "csv":
        resp = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "X-Bar-Count": str(len(bars))})
        await resp.prepare(request)
        await resp.write((",".join(COLUMNS) + "\n").encode())
        for i in range(0, len(bars), CHUNK):
            await resp.write(_csv_rows(bars[i:i + CHUNK]).encode())
        await resp.write_eof()
        return resp
    head = _head(result)
    if fmt == "records":
        head["bars"] = bars
    else:
        head["columns"] = list(COLUMNS)
        head["data"] = {c: [b.get(c) for b in bars] for c in COLUMNS}
    if len(bars) <= STREAM_OVER:
        return web.json_response(head)
    # stream large answers: one JSON document written in pieces
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    body = json.dumps(head)
    for i in range(0, len(body), 1 << 16):
        await resp.write(body[i:i + (1 << 16)].encode())
    await resp.write_eof()
    return resp
