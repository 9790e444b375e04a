"""KTRDR's system pages (``/api/v1/system/...``) in KTRDR's shapes: the keys, types and
nesting of ``ktrdr/api/endpoints/system.py`` and ``GapFillerService.get_stats()`` as
they were before KTRDR removed its gap-filler (commit ebec8d32^), answered by a real
connector on the simulator, a real gap-filler on gapfill.sock and the gateway."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ibhost.gapfill import store
from ibhost.gapfill.api import routes
from ibhost.gapfill.core import GapFiller
from ibhost.ipc.server import serve_routes
from ibhost.sim import Simulator
from ibhost.sim.universe import Query

from .connector_fixtures import running_connector
from .test_gapfill import NOW, filler, truth, ts
from .test_gateway import KEY, gateway

H = {"X-API-Key": KEY}
POOL = {"available_connections": int, "total_connections": int, "failed_connections": int,
        "host": str, "port": int, "uptime_seconds": (int, float), "created_at": str}
GAP_FILLER = {"running": bool, "check_interval": int, "supported_timeframes": list,
              "last_scan_time": (str, type(None))}
STATISTICS = {"gaps_detected": int, "gaps_filled": int, "gaps_failed": int,
              "symbols_processed": list, "recent_errors": list}
SERVICES = {"ib_connection": {"status": str, "healthy": bool},
            "gap_filler": {"status": str, "healthy": bool}}
SUMMARY = {"ib_connected": bool, "gap_filler_running": bool, "gaps_filled_today": int,
           "symbols_processed": int}
STATS = {"gaps_detected": int, "gaps_filled": int, "gaps_failed": int,
         "gaps_expected_skipped": int, "last_scan_time": (str, type(None)),
         "symbols_processed": list, "errors": list, "gap_classifications": dict,
         "running": bool, "check_interval": int, "supported_timeframes": list,
         "configuration": dict}
CONFIGURATION = {"frequency": str, "max_gap_days": (int, float), "batch_size": int,
                 "fill_unexpected_only": bool, "auto_start_on_api_startup": bool}
CLASSIFICATIONS = {"unexpected", "expected_weekend", "expected_trading_hours",
                   "expected_holiday", "market_closure"}
STATUS_DATA = {"version": str, "environment": str, "uptime_seconds": (int, float),
               "health": str, "services": dict, "summary": dict}
CONFIG_DATA = {"version": str, "environment": str, "api_version": str, "api_prefix": str,
               "host": str, "port": int, "cors_origins": list, "features_enabled": list,
               "services_available": list}


def shaped(obj: dict[str, Any], shape: dict[str, Any], where: str = "") -> None:
    """Every key KTRDR had is there with KTRDR's type (bool is not an int here)."""
    for k, t in shape.items():
        assert k in obj, f"{where}{k} missing in {obj}"
        if isinstance(t, dict):
            shaped(obj[k], t, f"{where}{k}.")
            continue
        types = t if isinstance(t, tuple) else (t,)
        assert isinstance(obj[k], types) and not (
            isinstance(obj[k], bool) and bool not in types), f"{where}{k}: {obj[k]!r}"


def iso(s: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(s)
    assert t.tzinfo is not None
    return t


@contextlib.asynccontextmanager
async def served(f: GapFiller) -> AsyncIterator[None]:
    sock = str(f.cfg.path(f.cfg.gapfill.socket))
    server = await serve_routes(routes(f), sock)
    try:
        yield
    finally:
        await server.stop(sock)


async def test_ib_status(sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with running_connector(tmp_path, sim), gateway(aiohttp_client, tmp_path, sim) as gw:
        r = await gw.get("/api/v1/system/ib-status", headers=H)
        body = await r.json()
        assert r.status == 200 and body["success"] is True
        shaped(body, {"success": bool, "connection_pool": POOL, "status": str,
                      "timestamp": str})
        pool = body["connection_pool"]
        assert body["status"] == "available" and iso(body["timestamp"])
        assert pool["available_connections"] == 1 and pool["total_connections"] == 1
        assert pool["host"] == "127.0.0.1" and pool["port"] == sim.port
        assert pool["failed_connections"] == 0 and pool["uptime_seconds"] >= 0
        assert iso(pool["created_at"]) <= dt.datetime.now(dt.UTC)
        # ibhost's own, beside KTRDR's
        assert body["ib_connected"] is True and body["ibhost_status"] == "ok"
        assert body["client_id"] == 1 and body["state"] == "ready"
        # without a key: where IB is and the client id are left out, types kept
        anon = await (await gw.get("/api/v1/system/ib-status")).json()
        shaped(anon, {"connection_pool": POOL})
        assert anon["connection_pool"]["host"] == "" and anon["connection_pool"]["port"] == 0
        assert anon["client_id"] is None and anon["reason"] == "connected to IB"
        # the /v1/ page keeps ibhost's own shape
        v1 = await (await gw.get("/v1/system/ib-status", headers=H)).json()
        assert v1["status"] == "ok" and "connection_pool" not in v1


async def test_ib_status_while_ib_is_down(sim: Simulator, tmp_path: Path,
                                          aiohttp_client: Any) -> None:
    async with gateway(aiohttp_client, tmp_path, sim) as gw:  # no connector at all
        body = await (await gw.get("/api/v1/system/ib-status", headers=H)).json()
        shaped(body, {"connection_pool": POOL})
        assert body["status"] == "initializing" and body["ib_connected"] is False
        assert body["connection_pool"]["available_connections"] == 0
        assert body["connection_pool"]["created_at"] == ""
        st = await (await gw.get("/api/v1/system/system-status", headers=H)).json()
        assert st["health"] == "critical" and st["status"] == "ok"
        assert st["services"]["gap_filler"] == {"status": "stopped", "healthy": False}
        gf = await (await gw.get("/api/v1/system/gap-filler-status")).json()
        shaped(gf, {"gap_filler": GAP_FILLER, "statistics": STATISTICS})
        assert gf["status"] == "ok" and gf["gap_filler"]["running"] is False
        assert gf["reason"] == "the gap-filler is not running"
        scan = await gw.post("/api/v1/system/gap-filler/force-scan", headers=H)
        assert scan.status == 503
        assert (await scan.json())["detail"] == "the gap-filler is not running"


async def test_gap_filler_status_and_force_scan(sim: Simulator, tmp_path: Path,
                                                aiohttp_client: Any) -> None:
    async with filler(sim, tmp_path) as f, served(f), \
            gateway(aiohttp_client, tmp_path, sim) as gw:
        before = await (await gw.get("/api/v1/system/gap-filler-status")).json()
        assert set(before) >= {"status", "gap_filler", "statistics"}
        shaped(before, {"status": str, "gap_filler": GAP_FILLER, "statistics": STATISTICS})
        assert before["gap_filler"] == {"running": False, "check_interval": 300,
                                        "supported_timeframes": ["1m", "5m", "15m", "30m",
                                                                 "1h", "4h", "1d"],
                                        "last_scan_time": None}
        assert before["statistics"] == {"gaps_detected": 0, "gaps_filled": 0,
                                        "gaps_failed": 0, "symbols_processed": [],
                                        "recent_errors": []}
        assert "dataDir" not in before  # ibhost's fields follow, the path only with a key

        q = Query(symbol="QQQ", secType="STK", currency="USD")
        want = truth(sim, q, ts("2025-11-24T00:00:00Z"), int(NOW.timestamp()), 3600)
        hole = sorted(want)[20]
        store.new_file(f.dir / "QQQ_1h.csv", {t: b for t, b in want.items() if t != hole})
        (f.dir / "SPY_1h.csv").write_text("timestamp,open\nnot,a,bar\n")

        keyless = await gw.post("/api/v1/system/gap-filler/force-scan")
        assert keyless.status == 401 and "detail" in await keyless.json()
        r = await gw.post("/api/v1/system/gap-filler/force-scan", headers=H)
        body = await r.json()
        assert r.status == 200, body
        assert body["status"] == "ok" and body["message"] == "Gap scan completed"
        assert body["result"]["success"] is True
        stats = body["result"]["stats"]
        shaped(stats, STATS)
        shaped(stats["configuration"], CONFIGURATION)
        assert set(stats["gap_classifications"]) == CLASSIFICATIONS
        assert stats["gaps_detected"] == 1 and stats["gaps_filled"] == 1
        assert stats["gap_classifications"]["unexpected"] == 1
        assert sorted(stats["symbols_processed"]) == ["QQQ_1h", "SPY_1h"]
        assert stats["gaps_failed"] == 1 and "SPY_1h.csv" in stats["errors"][0]["error"]
        iso(stats["errors"][0]["time"])
        # ibhost's scan follows KTRDR's keys
        assert {s["file"] for s in body["files"]} == {"QQQ_1h.csv", "SPY_1h.csv"}

        after = await (await gw.get("/api/v1/system/gap-filler-status", headers=H)).json()
        assert dt.timedelta(0) <= iso(after["gap_filler"]["last_scan_time"]) - NOW < \
            dt.timedelta(minutes=1)  # the simulator's clock, pinned then running
        s = after["statistics"]
        assert (s["gaps_detected"], s["gaps_filled"], s["gaps_failed"]) == (1, 1, 1)
        assert s["recent_errors"] == stats["errors"] and after["dataDir"] == str(f.dir)

        st = await (await gw.get("/api/v1/system/system-status")).json()
        assert st["summary"] == {"ib_connected": True, "gap_filler_running": False,
                                 "gaps_filled_today": 1, "symbols_processed": 2}
        assert st["health"] == "degraded"


async def test_system_status_and_status(sim: Simulator, tmp_path: Path,
                                        aiohttp_client: Any) -> None:
    async with filler(sim, tmp_path) as f, served(f), \
            gateway(aiohttp_client, tmp_path, sim) as gw:
        f.start()  # the scan loop runs, as under `ibhost gapfill`
        try:
            st = await (await gw.get("/api/v1/system/system-status", headers=H)).json()
            assert set(st) >= {"status", "health", "services", "summary"}
            shaped(st, {"status": str, "health": str, "services": SERVICES,
                        "summary": SUMMARY})
            assert st["status"] == "ok" and st["health"] == "healthy"
            assert st["services"] == {"ib_connection": {"status": "connected",
                                                        "healthy": True},
                                      "gap_filler": {"status": "running", "healthy": True}}
            # ibhost's own, as /v1/system/system-status answers them
            v1 = await (await gw.get("/v1/system/system-status", headers=H)).json()
            assert st["programs"].keys() == v1["programs"].keys()
            assert st["success"] is True and st["trading_enabled"] is False

            r = await gw.get("/api/v1/system/status")
            env = await r.json()
            assert r.status == 200 and set(env) == {"success", "data", "error"}
            assert env["success"] is True and env["error"] is None
            shaped(env["data"], STATUS_DATA)
            d = env["data"]
            assert d["health"] == "healthy" and d["environment"] == "paper"
            assert d["services"] == st["services"]
            shaped(d["summary"], SUMMARY)
            assert d["uptime_seconds"] >= 0 and d["gateway_uptime_seconds"] >= 0
        finally:
            await f.stop()
        down = await (await gw.get("/api/v1/system/status")).json()
        assert down["data"]["health"] == "degraded"
        assert down["data"]["summary"]["gap_filler_running"] is False


async def test_config_masks_keys(sim: Simulator, tmp_path: Path,
                                 aiohttp_client: Any) -> None:
    async with gateway(aiohttp_client, tmp_path, sim,
                       gateway__cors_origins="http://localhost:8081") as gw:
        r = await gw.get("/api/v1/system/config")
        env = await r.json()
        assert r.status == 200 and set(env) == {"success", "data", "error"}
        assert env["success"] is True and env["error"] is None
        shaped(env["data"], CONFIG_DATA)
        d = env["data"]
        assert (d["api_version"], d["api_prefix"]) == ("v1", "/api/v1")
        assert d["cors_origins"] == ["http://localhost:8081"]
        assert "gap_filling" in d["features_enabled"] and "trading" not in \
            d["features_enabled"]
        assert "ibhost" not in d  # the whole configuration only with a key
        keyed = await gw.get("/api/v1/system/config", headers=H)
        text = await keyed.text()
        assert KEY not in text
        full = (await keyed.json())["data"]["ibhost"]
        assert full["gateway"]["api_key"] == "***"
        assert full["ib"]["port"] == sim.port


@pytest.mark.parametrize("path", ["ib-status", "gap-filler-status", "system-status",
                                  "status", "config"])
async def test_errors_are_fastapi_shaped(sim: Simulator, tmp_path: Path,
                                         aiohttp_client: Any, path: str) -> None:
    async with gateway(aiohttp_client, tmp_path, sim, gateway__reads_need_key=True) as gw:
        r = await gw.get(f"/api/v1/system/{path}")
        assert r.status == 401 and isinstance((await r.json())["detail"], str)
        assert (await gw.put(f"/api/v1/system/{path}")).status == 405
