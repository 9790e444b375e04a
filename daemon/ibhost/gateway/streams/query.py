"""What a stream request asks for: the SSE query's and the WebSocket subscribe's
streams, read by one function (``stream_list``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...errors import bad_request
from ...validate import bool_word


def symbol_list(raw: str, field: str) -> list[str]:
    out = [s.strip().upper() for s in raw.split(",") if s.strip()]
    if len(out) > 200:
        raise bad_request(field, "at most 200 symbols")
    return out


def flag(q: Any, name: str) -> bool:
    v = q.get(name)
    if v is None:
        return False
    if v == "":  # named with no value (?orders): asked for
        return True
    b = bool_word(v)
    if b is None:
        raise bad_request(name, "must be true or false")
    return b


def since_of(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("since")
    if raw is None or raw == "":
        return None
    field = "Last-Event-ID" if request.headers.get("Last-Event-ID") else "since"
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise bad_request(field, "must be an order event's sequence number (an integer)")
    return int(raw)


STREAM_FIELDS = (("quotes", "quote"), ("bars", "bars"), ("realtimeBars", "rtbars"),
                 ("ticks", "ticks"), ("pnl", "pnl"))  # a request's field -> stream kind


def stream_list(fields: Any, shared: dict[str, dict[str, Any]]
                ) -> list[tuple[str, dict[str, Any]]]:
    """The streams a request asks for, as (kind, body): per field of ``STREAM_FIELDS``
    a list of symbols (each with its kind's ``shared`` parameters) or contract
    objects (as they are); P&L items as ``pnl_item`` reads them."""
    wants: list[tuple[str, dict[str, Any]]] = []
    for field, kind in STREAM_FIELDS:
        items = fields.get(field) or []
        if not isinstance(items, list):
            raise bad_request(field, "must be a list of symbols or contract objects")
        extra = shared.get(kind, {})
        for it in items:
            if isinstance(it, dict):
                wants.append((kind, it))
            elif kind == "pnl":
                wants.append((kind, pnl_item(it, extra)))
            elif isinstance(it, str):
                wants.append((kind, {"symbol": it.upper(), **extra}))
            else:
                raise bad_request(field, "must be a list of symbols or contract objects")
    return wants


def sse_wants(request: web.Request) -> list[tuple[str, dict[str, Any]]]:
    """The streams of an SSE query: comma-separated symbols, parameters shared."""
    q = request.query
    symbols = {field: symbol_list(q.get(field, ""), field) for field, _ in STREAM_FIELDS}
    sec = {"secType": q["secType"]} if q.get("secType") else {}
    what = q.get("whatToShow") or "TRADES"
    rth = flag(q, "useRTH") if symbols["bars"] or symbols["realtimeBars"] else False
    return stream_list(symbols, {
        "quote": sec,
        "bars": {"barSize": q.get("barSize") or "1 min", "whatToShow": what,
                 "useRTH": rth, **sec},
        "rtbars": {"whatToShow": what, "useRTH": rth, **sec},
        "ticks": {"tickType": q.get("tickType") or "Last", **sec},
        "pnl": {"account": q["account"]} if q.get("account") else {}})


def pnl_item(item: Any, acct: dict[str, Any]) -> dict[str, Any]:
    """``account`` (the account's P&L), a conId or a symbol (one position's)."""
    if isinstance(item, int) and not isinstance(item, bool):
        return {"conId": item, **acct}
    if isinstance(item, str):
        if item.upper() == "ACCOUNT":
            return dict(acct)
        if item.isdigit():
            return {"conId": int(item), **acct}
        return {"symbol": item.upper(), **acct}
    raise bad_request("pnl", "items are 'account', a conId or a symbol")


def summary(h: dict[str, Any]) -> dict[str, Any]:
    return {k: h.get(k) for k in ("key", "kind", "conId", "symbol", "secType",
                                  "localSymbol", "barSize", "whatToShow", "useRTH")
            if h.get(k) is not None}
