"""KTRDR's IB host-service contract at its own paths, so KTRDR's ``IbDataProvider``
works unchanged (``kpiteira/ktrdr``: ``ib-host-service/endpoints/data.py`` and
``ktrdr/data/acquisition/ib_data_provider.py``).

Shapes only: failures of a data call are 200 ``{"success": false, "error": ...}``
as KTRDR answers them; a malformed request is FastAPI's 422 ``{"detail": [...]}``;
bars travel as ``DataFrame.to_json(orient="index", date_format="iso")`` text, in a
body the connector writes (``shape: "ktrdr"``) and the gateway relays.
Symbols are classified the way KTRDR's validator does (forex pair -> CASH on
IDEALPRO, else a US stock on SMART, else a CME future) unless ``instrument_type``
says which.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from .. import models
from ..asks_families import (
    KtrdrHeadTimestamp,
    KtrdrHistorical,
    KtrdrValidate,
)
from ..errors import IbhostError
from ..symbols import CURRENCIES, forex_pair, normalize, resolve
from ..validate import req_str
from .common import TIMEFRAMES, Route, auth, connector, request_body

CACHE_SECONDS = 3600.0
HEAD_CACHE_SECONDS = 86400.0


@dataclass
class Known:
    """A classified symbol: the contract's details and the spec that addresses it."""

    details: dict[str, Any]
    spec: dict[str, Any]
    at: float
    head: str | None = None
    head_at: float | None = None
    head_by_tf: dict[str, str] = field(default_factory=dict)


KNOWN_KEY = web.AppKey("ktrdr_known", dict)


class NotFound(Exception):
    """No contract of any candidate type matches the symbol."""


def suggestion(symbol: str) -> str | None:
    """KTRDR's hint for a forex-looking symbol: USDJPY -> USD.JPY."""
    pair = forex_pair(symbol)
    if pair and pair[0] in CURRENCIES and pair[1] in CURRENCIES:
        return f"{pair[0]}.{pair[1]}"
    return None


async def classify(request: web.Request, symbol: str,
                   instrument_type: str | None = None) -> Known:
    """The symbol's contract, classified once an hour; concurrent requests for one
    symbol share one classification (KTRDR sends a day's segments at once)."""
    known: dict[tuple[str, str], Known | asyncio.Future[Known]] = request.app[KNOWN_KEY]
    key = (normalize(symbol), (instrument_type or "").upper())
    hit = known.get(key)
    if isinstance(hit, asyncio.Future):
        return await asyncio.shield(hit)
    if hit is not None and time.time() - hit.at < CACHE_SECONDS:
        return hit
    pending: asyncio.Future[Known] = asyncio.get_running_loop().create_future()
    known[key] = pending

    async def validate(spec: dict[str, Any]) -> dict[str, Any]:
        # KTRDR's answers are built from plain values (its ContractInfo's fields)
        d: dict[str, Any] = models.plain(await connector(request).validate(spec))
        return d

    try:
        resolved = await resolve(symbol, instrument_type, validate)
        if resolved is None:
            raise NotFound(symbol)
    except BaseException as e:
        known.pop(key, None)
        pending.set_exception(e if isinstance(e, Exception) else
                              IbhostError("unavailable", "classification cancelled"))
        pending.exception()  # retrieved: the waiters re-raise it
        raise
    found = Known(resolved[0], resolved[1], time.time())
    known[key] = found
    pending.set_result(found)
    return found


# IB's time-zone names are old tz-database links; KTRDR's trading hours (and its gap
# classifier, which reads them) use the canonical IANA names
IANA_ZONES = {
    "US/Eastern": "America/New_York", "EST": "America/New_York", "EST5EDT":
    "America/New_York", "US/Central": "America/Chicago", "CST": "America/Chicago",
    "CST6CDT": "America/Chicago", "US/Mountain": "America/Denver", "MST7MDT":
    "America/Denver", "US/Pacific": "America/Los_Angeles", "PST8PDT": "America/Los_Angeles",
    "GB": "Europe/London", "GB-Eire": "Europe/London", "MET": "Europe/Berlin", "CET":
    "Europe/Berlin", "Japan": "Asia/Tokyo", "Hongkong": "Asia/Hong_Kong", "PRC":
    "Asia/Shanghai", "Singapore": "Asia/Singapore", "Australia/NSW": "Australia/Sydney",
    "Canada/Eastern": "America/Toronto", "Europe/Kiev": "Europe/Kyiv", "Israel":
    "Asia/Jerusalem", "Universal": "UTC", "GMT": "UTC", "Etc/UTC": "UTC",
}


def iana_zone(ib_zone: str | None) -> str:
    return IANA_ZONES.get(ib_zone or "UTC", ib_zone or "UTC")


def _session(d: dict[str, Any]) -> tuple[str, str] | None:
    """The regular session's open and close (``HHMM``, the contract's time zone) from
    IB's liquid hours; None when they cannot be read."""
    for seg in str(d.get("liquidHours") or "").split(";"):
        if "-" in seg and "CLOSED" not in seg:
            a, _, b = seg.partition("-")
            a, b = a.rpartition(":")[2], b.rpartition(":")[2]
            if len(a) == 4 and len(b) == 4 and a.isdigit() and b.isdigit():
                return a, b
    return None


def _hours(d: dict[str, Any]) -> dict[str, Any]:
    """KTRDR's trading-hours block, filled from IB's liquid hours where it can be."""
    a, b = _session(d) or ("0930", "1600")
    return {"timezone": iana_zone(d.get("timeZone")),
            "regular_hours": {"start": f"{a[:2]}:{a[2:]}", "end": f"{b[:2]}:{b[2:]}",
                              "name": "Regular"},
            "extended_hours": [], "trading_days": [0, 1, 2, 3, 4], "holidays": []}


def bar_may_start_at(d: dict[str, Any], t: dt.datetime) -> bool:
    """Could a regular-hours bar start at ``t``? False only when ``t`` falls on a
    weekend or outside the session IB's liquid hours give (a half day or a holiday
    only makes this say yes where no bar comes)."""
    session = _session(d)
    if session is None:
        return True
    try:
        local = t.astimezone(ZoneInfo(iana_zone(d.get("timeZone"))))
    except (KeyError, ValueError):  # an unknown zone: no way to tell
        return True
    if local.weekday() >= 5:
        return False
    hhmm = local.strftime("%H%M")
    start, end = session
    return start <= hhmm < end if start < end else (hhmm >= start or hhmm < end)


def _contract_dict(d: dict[str, Any]) -> dict[str, Any]:
    """The fields of an ib_async Contract, as FastAPI encoded KTRDR's ContractInfo."""
    return {
        "secType": d["secType"], "conId": d["conId"], "symbol": d["symbol"],
        "lastTradeDateOrContractMonth": d.get("lastTradeDateOrContractMonth") or "",
        "strike": float(d.get("strike") or 0.0), "right": d.get("right") or "",
        "multiplier": d.get("multiplier") or "", "exchange": d.get("exchange") or "",
        "primaryExchange": d.get("primaryExchange") or "", "currency": d["currency"],
        "localSymbol": d.get("localSymbol") or "", "tradingClass": d.get("tradingClass") or "",
        "includeExpired": False, "secIdType": "", "secId": "", "description": "",
        "issuerId": "", "comboLegsDescrip": "", "comboLegs": [], "deltaNeutralContract": None,
    }


def contract_info(k: Known) -> dict[str, Any]:
    d = k.details
    return {
        "symbol": d["symbol"], "contract": _contract_dict(d), "asset_type": d["secType"],
        "exchange": d.get("primaryExchange") or d.get("exchange") or "",
        "currency": d["currency"],
        "description": d.get("longName") or d.get("lastTradeDateOrContractMonth") or "",
        "validated_at": k.at, "trading_hours": _hours(d), "head_timestamp": k.head,
        "head_timestamp_timeframes": ({**k.head_by_tf, "default": k.head} if k.head else None),
        "head_timestamp_fetched_at": k.head_at,
    }


async def head_of(request: web.Request, k: Known, timeframe: str | None) -> str | None:
    """The earliest data, as KTRDR asks for it: TRADES (BID, ASK, MIDPOINT for forex),
    outside regular hours too; one answer per symbol for a day."""
    if k.head is not None and k.head_at and time.time() - k.head_at < HEAD_CACHE_SECONDS:
        if timeframe:
            k.head_by_tf[timeframe] = k.head
        return k.head
    shows = ("BID", "ASK", "MIDPOINT") if k.spec["secType"] == "CASH" else ("TRADES",)
    last: IbhostError | None = None
    for what in shows:
        try:
            r = await connector(request).head_timestamp({
                **{a: str(b) for a, b in k.spec.items()}, "whatToShow": what,
                "useRTH": "false"})
        except IbhostError as e:
            if e.code in ("unavailable", "timeout"):
                raise
            last = e
            continue
        k.head, k.head_at = r.headTimestamp, time.time()
        if timeframe:
            k.head_by_tf[timeframe] = k.head
        return k.head
    if last is not None and last.code not in ("no_data", "not_found", "bad_request"):
        raise last
    return None


# --- endpoints ---------------------------------------------------------------------------

def _fail(message: str, **fields: Any) -> web.Response:
    return web.json_response({"success": False, **fields, "error": message})


def _validation(symbol: str, k: Known | None, heads: dict[str, str | None] | None,
                ) -> dict[str, Any]:
    if k is None:
        hint = suggestion(symbol)
        msg = f"Symbol {symbol} not found"
        if hint and hint != normalize(symbol):
            msg += f". Did you mean {hint}?"
        return {"success": True, "is_valid": False, "error_message": msg,
                "contract_info": None, "head_timestamps": {}, "error": None}
    return {"success": True, "is_valid": True, "error_message": None,
            "contract_info": contract_info(k),
            "head_timestamps": {tf: v for tf, v in (heads or {}).items() if v},
            "error": None}


async def _validate(request: web.Request, symbol: str, timeframes: list[str]) -> web.Response:
    empty = {"is_valid": None, "error_message": None, "contract_info": None,
             "head_timestamps": None}
    try:
        try:
            k = await classify(request, symbol)
        except NotFound:
            return web.json_response(_validation(symbol, None, None))
        heads = {tf: await head_of(request, k, tf) for tf in timeframes}
        return web.json_response(_validation(symbol, k, heads))
    except IbhostError as e:
        return _fail(e.message, **empty)


async def validate(request: web.Request) -> web.Response:
    auth(request)
    ask = KtrdrValidate.read(await request_body(request))
    return await _validate(request, ask.symbol, ask.timeframes)


async def symbol_info(request: web.Request) -> web.Response:
    auth(request)
    symbol = req_str(request.match_info, "symbol")
    return await _validate(request, symbol, ["1h"])


async def head_timestamp(request: web.Request) -> web.Response:
    auth(request)
    ask = KtrdrHeadTimestamp.read(request.query, query=True)
    symbol, timeframe, itype = ask.symbol, ask.timeframe, ask.instrument_type or None
    try:
        try:
            k = await classify(request, symbol, itype)
        except NotFound:  # KTRDR's validator answers no timestamp, and no error
            return web.json_response({"success": True, "timestamp": None, "error": None})
        ts = await head_of(request, k, timeframe)
        return web.json_response({"success": True, "timestamp": ts, "error": None})
    except IbhostError as e:
        return _fail(e.message, timestamp=None)


async def historical(request: web.Request) -> web.Response:
    auth(request)
    ask = KtrdrHistorical.read(await request_body(request))
    symbol, timeframe, itype = ask.symbol, ask.timeframe, ask.instrument_type or None
    start, end = ask.start, ask.end
    assert start is not None and end is not None  # required
    if start > end:  # a well-formed request that cannot be served: KTRDR's failure shape
        return _fail("start must not be after end (end is inclusive)", data=None, rows=None)
    try:
        try:
            k = await classify(request, symbol, itype)
        except NotFound:
            hint = suggestion(symbol)
            msg = f"Symbol {symbol} not found" + (f". Did you mean {hint}?" if hint and
                                                    hint != normalize(symbol) else "")
            return _fail(f"Symbol validation failed: {msg}", data=None, rows=None)
        if k.head is not None:
            # KTRDR refuses a start before the head timestamp it knows (its validator's
            # cached one) instead of answering partial data
            head = dt.datetime.fromisoformat(k.head.replace("Z", "+00:00"))
            if start < head:
                return _fail(f"Data not available before {head.isoformat()}. Requested "
                             f"start: {start.isoformat()}. Head timestamp: "
                             f"{head.isoformat()}", data=None, rows=None)
        # KTRDR's end is inclusive (index <= end): one second more when a bar can
        # start at ``end`` (a day from midnight to midnight then stays one IB request
        # for 1-minute bars, not two)
        if bar_may_start_at(k.details, end):
            end += dt.timedelta(seconds=1)
        # the body as KTRDR reads it, written by the connector (connector/shapes.py)
        raw = await connector(request).historical_bytes({
            **k.spec, "barSize": TIMEFRAMES[timeframe],
            "whatToShow": "BID" if k.spec["secType"] == "CASH" else "TRADES",
            "useRTH": True, "start": start.isoformat(), "end": end.isoformat(),
            "shape": "ktrdr"})
    except IbhostError as e:
        return _fail(e.message, data=None, rows=None)
    return web.Response(body=raw, content_type="application/json")


ROUTES: tuple[Route, ...] = (
    Route("POST", "/data/historical", historical, "ktrdr"),
    Route("POST", "/data/validate", validate, "ktrdr"),
    Route("GET", "/data/head-timestamp", head_timestamp, "ktrdr"),
    Route("GET", "/data/symbol-info/{symbol}", symbol_info, "ktrdr"),
)
