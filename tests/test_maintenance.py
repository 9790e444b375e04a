"""IB's day: a drop inside a maintenance window is reported as maintenance (health and
a 503 that says until when), and orders are held around IB Gateway's auto-restart.
"Now" is IB's clock: the simulator's, pinned to SIM_START (15:30 UTC)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ibhost.connector.session import State
from ibhost.sim import Simulator

from .connector_fixtures import running_connector
from .test_gateway import KEY, gateway

H = {"X-API-Key": KEY}
WINDOW = {"watchdog__region": "none", "watchdog__maintenance": "daily 15:00-16:00",
          "watchdog__maintenance_tz": "UTC"}


async def test_a_drop_inside_a_maintenance_window_is_maintenance_until_its_end(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with running_connector(tmp_path, sim, **WINDOW) as (con, client), \
            gateway(aiohttp_client, tmp_path, sim, **WINDOW) as gw:
        # inside the window, but connected: business as usual
        assert (await client.request("GET", "/health"))["status"] == "ok"
        r = await gw.post("/v1/data/validate", headers=H, json={"symbol": "AAPL"})
        assert r.status == 200
        port_closed = asyncio.get_running_loop().create_task(sim.close_port(3.0))
        await con.session.wait_state(State.DOWN, State.CONNECTING, timeout=5)
        h = await client.request("GET", "/health")
        assert h["status"] == "maintenance"
        assert h["maintenanceUntil"] == "2025-12-10T16:00:00+00:00"
        assert "daily 15:00-16:00" in h["reason"]
        r = await gw.post("/v1/data/validate", headers=H, json={"symbol": "MSFT"},
                          params={"maxAge": "0"})
        assert r.status == 503
        err = (await r.json())["error"]
        assert err["code"] == "maintenance" and err["until"] == "2025-12-10T16:00:00+00:00"
        assert "until 2025-12-10 16:00 UTC" in err["message"]
        for _ in range(50):  # the gateway polls the connector's health twice a second
            body = await (await gw.get("/health", headers=H)).json()
            if body["status"] == "maintenance":
                break
            await asyncio.sleep(0.1)
        assert body["status"] == "maintenance" and body["healthy"] is False
        assert "daily 15:00-16:00" in body["reason"]
        await port_closed
        await con.session.wait_state(State.READY, timeout=10)
        r = await gw.post("/v1/data/validate", headers=H, json={"symbol": "MSFT"})
        assert r.status == 200


async def test_the_same_drop_outside_a_window_is_unavailable(
        sim: Simulator, tmp_path: Path) -> None:
    async with running_connector(tmp_path, sim, watchdog__region="none") as (con, client):
        port_closed = asyncio.get_running_loop().create_task(sim.close_port(2.0))
        await con.session.wait_state(State.DOWN, State.CONNECTING, timeout=5)
        h = await client.request("GET", "/health")
        assert h["status"] == "down" and h["maintenanceUntil"] is None
        await port_closed


async def test_orders_are_held_around_the_gateways_auto_restart(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    near = {"ib__auto_restart": "15:31", "ib__auto_restart_tz": "UTC",
            "trading__restart_margin": 120}
    order = {"symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT",
             "limitPrice": 1.0}
    async with running_connector(tmp_path, sim, **near) as (con, client), \
            gateway(aiohttp_client, tmp_path, sim, trading__enabled=True) as gw:
        before = len(sim.state()["orders"])
        r = await gw.post("/v1/orders", headers=H, json=order)
        assert r.status == 503, await r.text()
        err = (await r.json())["error"]
        assert err["code"] == "maintenance"
        assert "15:29:00 to 15:33:00" in err["message"] and "ib.auto_restart" in \
            err["message"]
        assert err["until"] == "2025-12-10T15:33:00+00:00"
        assert len(sim.state()["orders"]) == before  # nothing reached IB
        # reads go on as usual
        assert (await gw.post("/v1/data/validate", headers=H,
                              json={"symbol": "AAPL"})).status == 200
    async with running_connector(tmp_path, sim, ib__auto_restart="23:45",
                                 ib__auto_restart_tz="America/New_York") as (con, client), \
            gateway(aiohttp_client, tmp_path, sim, trading__enabled=True) as gw:
        r = await gw.post("/v1/orders", headers=H, json=order)  # 10:30 in New York
        assert r.status == 201, await r.text()
