"""Historical bars as columnar JSON (default), records or CSV.

CSV and records are streamed: the head goes out as soon as the contract is known,
then each chunk's bars in time order as IB answers them, so a five-year download
shows its first rows within a second of the first chunk. Records end with a
trailing record (``count``, ``requests``, ``complete``); a stream that fails half
way is cut off (no closing bracket or final chunk), so no client mistakes it for
a whole answer. Columnar JSON needs every bar before the first column ends: the
connector writes it (connector/shapes.py) and the gateway relays its bytes, as it
does KTRDR's and the bridge's historical answers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ..errors import IbhostError, bad_request

log = logging.getLogger("ibhost.gateway.formats")
COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "wap", "count")
FORMATS = ("json", "records", "csv")


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


def _csv_rows(bars: list[dict[str, Any]]) -> str:
    return "".join(",".join("" if b.get(c) is None else str(b.get(c)) for c in COLUMNS) + "\n"
                   for b in bars)


async def stream(request: web.Request, head: dict[str, Any], lines: AsyncIterator[Any],
                 fmt: str, rid: str) -> web.StreamResponse:
    """Relay the connector's NDJSON parts as CSV rows or a records document."""
    csv = fmt == "csv"
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8" if csv else "application/json",
        "X-Ibhost-Requests": str(head.get("requests", 1)), "X-Request-ID": rid})
    await resp.prepare(request)
    if csv:
        await resp.write((",".join(COLUMNS) + "\n").encode())
    else:
        meta = {"success": True, **head}
        await resp.write(json.dumps(meta)[:-1].encode() + b', "bars": [')
    count = 0
    async for line in lines:
        if "error" in line:  # failed half way: cut the answer off, never end it cleanly
            err = IbhostError.from_dict(line)
            log.warning("historical stream %s cut off after %d bars: %s", rid, count,
                        err.message)
            if request.transport is not None:
                request.transport.close()
            return resp
        if line.get("done"):
            break
        bars = line["bars"]
        if not bars:
            continue
        if csv:
            await resp.write(_csv_rows(bars).encode())
        else:
            text = json.dumps(bars)[1:-1]
            await resp.write(((", " if count else "") + text).encode())
        count += len(bars)
    if not csv:
        await resp.write(f'], "count": {count}, "complete": true}}'.encode())
    await resp.write_eof()
    return resp
