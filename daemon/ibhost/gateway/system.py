"""KTRDR's system pages at KTRDR's paths (``/api/v1/system/...``), in the shapes of
``ktrdr/api/endpoints/system.py`` as it was before KTRDR removed its gap-filler
(commit ``ebec8d32^``): KTRDR's keys, types and nesting first, then ibhost's own
fields where they do not collide. Failures are FastAPI's ``{"detail": ...}``.

Shapes only: the numbers come from the cached health, the connector's /status and
the gap-filler's /status, the same calls the /v1/ pages make.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from aiohttp import web

from .. import __version__
from ..config import describe
from ..errors import IbhostError
from ..ipc import IpcError
from .common import LIVE_PORTS, Route, as_error, auth, deadline_of, request_body, trusted
from .health import public
from .keys import (
    CONFIG_KEY,
    CONNECTOR_KEY,
    GAPFILL_KEY,
    HEALTH_KEY,
    STARTED_KEY,
    WATCHDOG_KEY,
)

GAPFILL_NOT_RUNNING = "the gap-filler is not running"


def _environment(request: web.Request) -> str:
    """``live`` or ``paper`` (by IB's port, as /health's tradingMode): ibhost has no
    development/production setting, and this is what a monitor tells apart."""

    return "live" if request.app[CONFIG_KEY].ib.port in LIVE_PORTS else "paper"


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


async def _connection(request: web.Request) -> dict[str, Any]:
    """The connector's connection diagnostics (``/status``), or {} when it cannot say
    within ``gateway.health_timeout``."""
    h = request.app[HEALTH_KEY].cached()
    if h.get("connector") is None:  # down or busy: do not wait on it
        return {}
    try:
        st = await request.app[CONNECTOR_KEY].status(
            read_timeout=request.app[CONFIG_KEY].gateway.health_timeout)
    except (IpcError, IbhostError):
        return {}
    conn: dict[str, Any] = st.get("connection") or {}
    return conn


def _uptime(conn: dict[str, Any]) -> float:
    since = conn.get("connectedSince")
    if not since:
        return 0.0
    return round(max(0.0, time.time() - dt.datetime.fromisoformat(since).timestamp()), 1)


async def _gapfill(request: web.Request) -> dict[str, Any] | None:
    """The gap-filler's /status, or None when it is not running."""
    try:
        st: dict[str, Any] = await request.app[GAPFILL_KEY].request(
            "GET", "/status", read_timeout=2.0)
    except IpcError:
        return None
    if not trusted(request):
        st.pop("dataDir", None)
    return st


def _symbols(g: dict[str, Any]) -> list[str]:
    """KTRDR's ``SYMBOL_timeframe`` names of the files scanned since the start."""
    return [name.removesuffix(".csv") for name in g.get("perFile") or {}]


def _errors(g: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"time": _iso(e["at"]), "error": f"{e['file']}: {e['error']}"}
            for e in g.get("recentErrors") or []]


def _counts(g: dict[str, Any]) -> dict[str, int]:
    per = (g.get("perFile") or {}).values()
    return {"gaps_detected": sum(f["gapsFound"] for f in per),
            "gaps_filled": sum(f["gapsFilled"] for f in per),
            "gaps_failed": int(g.get("failures") or 0)}


def _last_scan(g: dict[str, Any]) -> str | None:
    return _iso((g.get("lastScan") or {}).get("at"))


# --- /ib-status --------------------------------------------------------------------------

async def ib_status(request: web.Request) -> web.Response:
    """KTRDR's ``connection_pool`` view of the one IB connection, then ibhost's fields.
    IB's host and port, the client id and the connector's reason only with a key."""
    auth(request)
    keyed = trusted(request)
    h = request.app[HEALTH_KEY].cached()
    c = h.get("connector") or {}
    conn = await _connection(request)
    ib = request.app[CONFIG_KEY].ib
    usable = h["status"] in ("ok", "degraded")
    return web.json_response({
        "success": True,
        "connection_pool": {
            "available_connections": 1 if usable else 0,
            "total_connections": 1 if conn.get("connectedSince") else 0,
            "failed_connections": int(conn.get("reconnectFailures") or 0),
            "host": ib.host if keyed else "", "port": ib.port if keyed else 0,
            "uptime_seconds": _uptime(conn),
            "created_at": conn.get("connectedSince") or "",
        },
        "status": "available" if usable else "initializing",
        "timestamp": _now_iso(),
        # ibhost's own
        "ib_connected": usable, "ibhost_status": h["status"],
        "reason": h["reason"] if keyed else public(h)["reason"],
        "state": c.get("state"), "client_id": c.get("clientId") if keyed else None,
        "farms": c.get("farms"), "competing_session": c.get("competingSession"),
    })


# --- /gap-filler-status and /gap-filler/force-scan ---------------------------------------

def _filler_stats(g: dict[str, Any] | None) -> dict[str, Any]:
    """KTRDR's ``gap_filler`` and ``statistics`` objects from the gap-filler's status."""
    g = g or {}
    return {
        "gap_filler": {
            "running": bool(g.get("running")),
            "check_interval": int(g.get("interval") or 0),
            "supported_timeframes": list(g.get("timeframes") or []),
            "last_scan_time": _last_scan(g),
        },
        "statistics": {**_counts(g), "symbols_processed": _symbols(g),
                       "recent_errors": _errors(g)},
    }


async def gapfill_status(request: web.Request) -> web.Response:
    """KTRDR's gap-filler page; a gap-filler that is not running is ``running: false``
    (with ``reason``), and ibhost's own status fields follow."""
    auth(request)
    g = await _gapfill(request)
    body: dict[str, Any] = {"status": "ok", **_filler_stats(g)}
    if g is None:
        body["reason"] = GAPFILL_NOT_RUNNING
    else:
        body.update({k: v for k, v in g.items() if k not in body})
    return web.json_response(body)


def ktrdr_stats(g: dict[str, Any]) -> dict[str, Any]:
    """What KTRDR's ``GapFillerService.get_stats()`` returned. ibhost judges gaps against
    exchange calendars, so every gap it counts is KTRDR's ``unexpected`` kind and none
    is skipped as expected (weekends, holidays and closed hours are not gaps)."""
    s = _filler_stats(g)
    counts = _counts(g)
    return {
        **counts, "gaps_expected_skipped": 0,
        "last_scan_time": s["gap_filler"]["last_scan_time"],
        "symbols_processed": _symbols(g),
        "errors": s["statistics"]["recent_errors"],
        "gap_classifications": {"unexpected": counts["gaps_detected"],
                                "expected_weekend": 0, "expected_trading_hours": 0,
                                "expected_holiday": 0, "market_closure": 0},
        "running": s["gap_filler"]["running"],
        "check_interval": s["gap_filler"]["check_interval"],
        "supported_timeframes": s["gap_filler"]["supported_timeframes"],
        "configuration": {
            "frequency": f"every {s['gap_filler']['check_interval']} s",
            "max_gap_days": g.get("maxAgeDays"), "batch_size": g.get("filesPerCycle"),
            "fill_unexpected_only": True, "auto_start_on_api_startup": True,
        },
    }


async def force_scan(request: web.Request) -> web.Response:
    """Scan now (optionally ``{"files": [...]}``): KTRDR's ``{status, message, result:
    {success, stats}}``, then the scan ibhost ran (``at``, ``seconds``, ``files``). It
    sets IB requests going: a key is needed once keys are configured."""
    auth(request, always=True)
    body = await request_body(request)
    gapfill = request.app[GAPFILL_KEY]
    try:
        scan: dict[str, Any] = await gapfill.request(
            "POST", "/scan", json_body=body, deadline=deadline_of(request))
        g = await gapfill.request("GET", "/status", read_timeout=5.0)
    except IpcError as e:
        err = as_error(e)
        assert err is not None
        if not e.timeout:
            err = IbhostError("unavailable", GAPFILL_NOT_RUNNING, extra={"program": "gapfill"})
        raise err from e
    return web.json_response({"status": "ok", "message": "Gap scan completed",
                              "result": {"success": True, "stats": ktrdr_stats(g)},
                              **{k: v for k, v in scan.items()
                                 if k not in ("status", "message", "result")}})


# --- /system-status, /status, /config ----------------------------------------------------

async def programs_status(request: web.Request) -> dict[str, Any]:
    """ibhost's view of its programs (``/v1/system/system-status``); the watchdog's
    error text names its socket's path, so only a caller with a key reads it."""
    keyed = trusted(request)
    h = request.app[HEALTH_KEY].cached()
    if not keyed:
        h = public(h)
    try:
        wd = await request.app[WATCHDOG_KEY].request("GET", "/status", read_timeout=1.0)
        watchdog = {"status": "ok", "wakes": wd["wakesTotal"],
                    "maintenance": wd["maintenance"],
                    "restarts": {k: v["restartsTotal"] for k, v in wd["programs"].items()}}
    except Exception as e:  # reported, not raised
        watchdog = {"status": "down",
                    "reason": str(e) if keyed else "the watchdog is not answering"}
    return {
        "success": True,
        "programs": {
            "gateway": {"status": "ok", "version": __version__},
            "connector": {"status": h["status"], "reason": h["reason"]},
            "watchdog": watchdog,
        },
        "trading_enabled": request.app[CONFIG_KEY].trading.enabled,
    }


async def _overview(request: web.Request) -> dict[str, Any]:
    h = request.app[HEALTH_KEY].cached()
    ib_connected = h["status"] in ("ok", "degraded")
    g = await _gapfill(request)
    running = bool(g and g.get("running"))
    return {
        "services": {
            "ib_connection": {"status": "connected" if ib_connected else "disconnected",
                              "healthy": ib_connected},
            "gap_filler": {"status": "running" if running else "stopped",
                           "healthy": running},
        },
        "summary": {
            "ib_connected": ib_connected, "gap_filler_running": running,
            "gaps_filled_today": int((g or {}).get("gapsFilledToday") or 0),
            "symbols_processed": len(_symbols(g or {})),
        },
    }


async def system_status(request: web.Request) -> web.Response:
    """KTRDR's overview (``health``: healthy / degraded / critical), then ibhost's
    ``success``, ``programs`` and ``trading_enabled`` (as /v1/system/system-status)."""
    auth(request)
    o = await _overview(request)
    ib, gf = o["summary"]["ib_connected"], o["summary"]["gap_filler_running"]
    health = "healthy" if ib and gf else "critical" if not ib and not gf else "degraded"
    return web.json_response({"status": "ok", "health": health, **o,
                              **await programs_status(request)})


async def status(request: web.Request) -> web.Response:
    """KTRDR's ApiResponse ``{success, data, error}``; ``uptime_seconds`` is the IB
    connection's (KTRDR's was its pool's), the gateway's own follows."""
    auth(request)
    o = await _overview(request)
    conn = await _connection(request)
    ok = o["summary"]["ib_connected"] and o["summary"]["gap_filler_running"]
    return web.json_response({"success": True, "data": {
        "version": __version__,
        "environment": _environment(request),
        "uptime_seconds": _uptime(conn),
        "health": "healthy" if ok else "degraded", **o,
        "gateway_uptime_seconds": round(time.monotonic() - request.app[STARTED_KEY], 1),
    }, "error": None})


async def config(request: web.Request) -> web.Response:
    """KTRDR's configuration page for the gateway; with a key (once keys are
    configured) also ibhost's whole effective configuration, API keys as ``***``."""
    auth(request)
    cfg = request.app[CONFIG_KEY]
    features = ["ib_integration", "gap_filling", "symbol_validation", "data_loading",
                "streaming"] + (["trading"] if cfg.trading.enabled else [])
    data: dict[str, Any] = {
        "version": __version__,
        "environment": _environment(request),
        "api_version": "v1", "api_prefix": "/api/v1",
        "host": cfg.gateway.host, "port": cfg.gateway.port,
        "cors_origins": list(cfg.gateway.cors_origins),
        "features_enabled": features,
        "services_available": ["connector", "gap_filler", "pace_manager",
                               "symbol_validator", "data_fetcher", "watchdog"],
    }
    if trusted(request):
        data["ibhost"] = describe(cfg)
    return web.json_response({"success": True, "data": data, "error": None})


ROUTES: tuple[Route, ...] = tuple(
    Route(method, "/api/v1/system/" + path, handler, family="ktrdr")
    for method, path, handler in (
        ("GET", "ib-status", ib_status),
        ("GET", "gap-filler-status", gapfill_status),
        ("POST", "gap-filler/force-scan", force_scan),
        ("GET", "system-status", system_status),
        ("GET", "status", status),
        ("GET", "config", config),
    ))
