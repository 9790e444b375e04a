"""The HTTP gateway against the real connector and the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ibhost.gateway.app import init_app
from ibhost.gateway.keys import HEALTH_KEY
from ibhost.sim import Simulator

from .connector_fixtures import make_config, running_connector, wait_until

KEY = "test-key-0123456789abcdef"
H = {"X-API-Key": KEY}


@contextlib.asynccontextmanager
async def gateway(aiohttp_client: Any, home: Path, sim: Simulator,
                  **overrides: Any) -> AsyncIterator[Any]:
    cfg = make_config(home, sim, gateway__api_key=KEY, **overrides)
    client = await aiohttp_client(init_app(cfg))
    await asyncio.sleep(0.1)  # first health poll
    yield client


@contextlib.asynccontextmanager
async def trading_stack(aiohttp_client: Any, home: Path, sim: Simulator) -> AsyncIterator[Any]:
    """A connector and a gateway on ``sim``, trading on for stocks and options."""
    async with running_connector(home, sim), \
            gateway(aiohttp_client, home, sim, trading__enabled=True,
                    trading__allowed_sec_types="STK,OPT") as gw:
        yield gw


@pytest.fixture
async def stack(sim: Simulator, tmp_path: Path, aiohttp_client: Any):
    async with trading_stack(aiohttp_client, tmp_path, sim) as gw:
        yield gw


async def test_service_endpoints(stack: Any) -> None:
    r = await stack.get("/")
    info = await r.json()
    assert info["name"] == "ibhost" and "POST /data/historical" in info["endpoints"]
    assert (await (await stack.get("/ping")).json())["pong"] is True
    h = await stack.get("/v1/health", headers=H)
    body = await h.json()
    assert h.status == 200 and body["status"] == "ok" and body["connector"]["clientId"] == 1
    live = await (await stack.get("/v1/health?connect=true")).json()
    assert live["status"] == "ok"
    d = await (await stack.get("/v1/health/detailed", headers=H)).json()
    assert d["connector"]["connection"]["serverVersion"] == 178
    ib = await (await stack.get("/v1/system/ib-status", headers=H)).json()
    assert ib["ib_connected"] is True and ib["client_id"] == 1
    sysst = await (await stack.get("/v1/system/system-status")).json()
    assert sysst["programs"]["connector"]["status"] == "ok"
    spec = await (await stack.get("/openapi.json")).json()
    assert "/v1/data/historical" in spec["paths"] and spec["openapi"].startswith("3.")
    page = await stack.get("/docs")
    assert page.status == 200 and "/v1/orders/{orderId}" in await page.text()
    r404 = await stack.get("/nope")
    assert r404.status == 404 and (await r404.json())["error"]["code"] == "not_found"
    r405 = await stack.put("/ping")
    assert r405.status == 405 and "error" in await r405.json()


async def test_historical_formats(stack: Any, sim: Simulator) -> None:
    body = {"symbol": "AAPL", "timeframe": "1h", "start": "2025-11-17T00:00:00Z",
            "end": "2025-11-22T00:00:00Z"}
    col = await (await stack.post("/v1/data/historical", json=body)).json()
    assert col["success"] and col["count"] == 35 and col["barSize"] == "1 hour"
    assert col["columns"][:2] == ["timestamp", "open"]
    assert len(col["data"]["close"]) == 35
    rec = await (await stack.post("/v1/data/historical?format=records", json=body)).json()
    assert rec["bars"][0]["close"] == col["data"]["close"][0]
    csv = await stack.post("/v1/data/historical", json=body, headers={"Accept": "text/csv"})
    lines = (await csv.text()).strip().splitlines()
    assert csv.headers["Content-Type"].startswith("text/csv")
    assert lines[0].startswith("timestamp,open,high,low,close,volume") and len(lines) == 36
    bad = await stack.post("/v1/data/historical?format=xml", json=body)
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "format"
    # a large answer is the connector's document relayed as it is: one valid document
    big = await stack.post("/v1/data/historical", json={
        "symbol": "AAPL", "barSize": "1 min", "start": "2025-11-03", "end": "2025-11-22",
        "useRTH": False})
    raw = await big.read()
    assert int(big.headers["Content-Length"]) == len(raw)
    doc = __import__("json").loads(raw)
    assert doc["count"] == len(doc["data"]["timestamp"]) == len(doc["data"]["wap"]) > 5000
    assert doc["data"]["timestamp"] == sorted(doc["data"]["timestamp"])


async def test_data_endpoints(stack: Any) -> None:
    v = await (await stack.post("/v1/data/validate", json={"symbol": "IBM"})).json()
    assert v["valid"] and v["primaryExchange"] == "NYSE"
    nf = await stack.post("/v1/data/validate", json={"symbol": "ZZZZ"})
    assert nf.status == 404 and (await nf.json())["error"]["ib_code"] == 200
    ht = await (await stack.get("/v1/data/head-timestamp?symbol=MSFT")).json()
    assert ht["headTimestamp"].startswith("1986-03-13")
    ch = await (await stack.get("/v1/options/chain?symbol=AAPL")).json()
    assert {c["exchange"] for c in ch["chains"]} >= {"SMART", "CBOE"}
    s = await (await stack.post("/v1/market/snapshot", json={"symbol": "SPY"})).json()
    assert s["bid"] < s["ask"]


async def test_trading_flow_with_key(stack: Any, sim: Simulator) -> None:
    r = await stack.post("/v1/orders", json={"symbol": "AAPL", "action": "BUY", "quantity": 2,
                                          "orderType": "LMT", "limitPrice": 1.0}, headers=H)
    order = await r.json()
    assert r.status == 201 and order["status"] == "Submitted"
    opens = await (await stack.get("/v1/orders", headers=H)).json()
    assert [o["orderId"] for o in opens] == [order["orderId"]]
    c = await stack.delete(f"/v1/orders/{order['orderId']}", headers=H)
    assert (await c.json())["status"] == "Cancelled"
    f = await stack.post("/v1/orders", json={"symbol": "AAPL", "action": "BUY", "quantity": 3,
                                          "orderType": "MKT"}, headers=H)
    assert (await f.json())["status"] == "Filled"
    ex = await (await stack.get("/v1/executions?symbol=AAPL", headers=H)).json()
    assert len(ex) == 1 and ex[0]["shares"] == 3
    pos = await (await stack.get("/v1/positions", headers=H)).json()
    assert pos[0]["position"] == 3


async def test_orders_need_a_key(stack: Any, sim: Simulator) -> None:
    body = {"symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "MKT"}
    r = await stack.post("/v1/orders", json=body)
    assert r.status == 401 and (await r.json())["error"]["field"] == "X-API-Key"
    r = await stack.post("/v1/orders", json=body, headers={"X-API-Key": "wrong-key-000000000"})
    assert r.status == 403
    r = await stack.delete("/v1/orders/1")
    assert r.status == 401
    assert sim.state()["orders"] == []


async def test_trading_off_by_default_and_without_configured_key(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    body = {"symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT",
            "limitPrice": 1.0}
    async with running_connector(tmp_path, sim), gateway(aiohttp_client, tmp_path, sim) as gw:
        r = await gw.post("/v1/orders", json=body, headers=H)
        err = (await r.json())["error"]
        assert r.status == 403 and err["guard"] == "trading_disabled"
    async with running_connector(tmp_path, sim):
        cfg = make_config(tmp_path, sim, trading__enabled=True)  # no key configured
        gw2 = await aiohttp_client(init_app(cfg))
        r = await gw2.post("/v1/orders", json=body, headers=H)
        assert r.status == 403 and (await r.json())["error"]["guard"] == "api_key"
    assert sim.state()["orders"] == []


@pytest.mark.parametrize(("body", "guard"), [
    ({"symbol": "ES", "secType": "FUT", "exchange": "CME", "action": "BUY", "quantity": 1,
      "orderType": "LMT", "limitPrice": 1}, "sec_type"),
    ({"symbol": "TSLA", "action": "BUY", "quantity": 1, "orderType": "LMT",
      "limitPrice": 1}, "symbol_allowlist"),
    ({"symbol": "AAPL", "secType": "OPT", "expiry": "20261218", "strike": 230, "right": "C",
      "action": "BUY", "quantity": 1, "orderType": "MKT"}, "market_order_on_option"),
    ({"symbol": "AAPL", "action": "BUY", "quantity": 51, "orderType": "LMT",
      "limitPrice": 1}, "max_quantity"),
    ({"symbol": "AAPL", "action": "BUY", "quantity": 50, "orderType": "LMT",
      "limitPrice": 300}, "max_notional"),
    ({"symbol": "AAPL", "action": "BUY", "quantity": 50, "orderType": "MKT"}, "max_notional"),
])
async def test_each_guard(sim: Simulator, tmp_path: Path, aiohttp_client: Any,
                          body: dict[str, Any], guard: str) -> None:
    limit = 10000
    if body["orderType"] == "MKT" and guard == "max_notional":
        # a market order is judged at the simulator's own price: set the limit below
        # it, whatever the price is at the pinned moment
        from ibhost.sim.universe import Query
        aapl = sim.universe.match(Query(symbol="AAPL", secType="STK", currency="USD"))[0]
        limit = int(0.9 * body["quantity"] * sim.market.quote(aapl, sim.now()).ask)
    async with running_connector(tmp_path, sim), gateway(
            aiohttp_client, tmp_path, sim, trading__enabled=True,
            trading__allowed_sec_types="STK,OPT", trading__symbols="AAPL,MSFT",
            trading__max_quantity=50, trading__max_notional=limit) as gw:
        r = await gw.post("/v1/orders", json=body, headers=H)
        err = (await r.json())["error"]
        assert r.status == 403 and err["guard"] == guard, err
        metrics = await (await gw.get("/metrics")).text()
        assert f'ibhost_gateway_order_guard_rejections_total{{guard="{guard}"}} 1.0' in metrics
    assert sim.state()["orders"] == []


async def test_idempotency_key_one_order_also_across_a_gateway_restart(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    body = {"symbol": "MSFT", "action": "BUY", "quantity": 4, "orderType": "MKT"}
    hdrs = {**H, "Idempotency-Key": "order-2025-11-21-001"}
    over = {"trading__enabled": True}
    async with running_connector(tmp_path, sim):
        async with gateway(aiohttp_client, tmp_path, sim, **over) as gw:
            first = await gw.post("/v1/orders", json=body, headers=hdrs)
            again = await gw.post("/v1/orders", json=body, headers=hdrs)
            assert first.status == 201 and again.status == 201
            assert again.headers["Idempotent-Replayed"] == "true"
            assert (await first.json())["permId"] == (await again.json())["permId"]
            clash = await gw.post("/v1/orders", json={**body, "quantity": 5}, headers=hdrs)
            assert clash.status == 409 and (await clash.json())["error"]["field"] == \
                "Idempotency-Key"
        await gw.close()
        async with gateway(aiohttp_client, tmp_path, sim, **over) as gw2:  # restarted
            third = await gw2.post("/v1/orders", json=body, headers=hdrs)
            assert third.headers["Idempotent-Replayed"] == "true"
            assert "Idempotent-Stale" not in third.headers
        await gw2.close()
    # a new gateway with an empty store: the connector still finds the orderRef at IB
    for name in ("idempotency.sqlite3", "idempotency.sqlite3-wal", "idempotency.sqlite3-shm"):
        (tmp_path / "data" / name).unlink(missing_ok=True)
    async with running_connector(tmp_path, sim, ib__client_id_start=9), \
            gateway(aiohttp_client, tmp_path, sim, **over) as gw3:
        fourth = await gw3.post("/v1/orders", json=body, headers=hdrs)
        assert fourth.status == 200 and (await fourth.json())["duplicate"] is True
    assert len(sim.state()["executions"]) == 1


async def test_503_with_state_while_the_ib_gateway_is_down(stack: Any, sim: Simulator) -> None:
    await sim.close_port(4)
    await asyncio.sleep(0.5)
    r = await stack.post("/v1/data/validate", json={"symbol": "AAPL"})
    err = (await r.json())["error"]
    assert r.status == 503 and err["code"] == "unavailable" and err["state"] in (
        "down", "connecting")
    await wait_until(lambda: sim.listening, timeout=6)


async def test_health_within_1s_while_the_connector_is_stopped(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "ibhost.toml").write_text(f"[ib]\nport = {sim.port}\nsettle_delay = 0.1\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ibhost.cli", "connector", "--home", str(home), "--set",
        "connector.log_level=WARNING", stderr=asyncio.subprocess.DEVNULL)
    try:
        cfg = make_config(home, sim)
        gw = await aiohttp_client(init_app(cfg))
        await wait_until(lambda: sim.state()["clients"], timeout=20)
        for _ in range(50):
            if (await (await gw.get("/v1/health")).json())["status"] == "ok":
                break
            await asyncio.sleep(0.2)
        os.kill(proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            while (await (await gw.get("/v1/health")).json())["status"] != "busy":
                assert time.monotonic() - stopped < 1.4, "not busy within a second"
                await asyncio.sleep(0.02)
            for query in ("/v1/health?connect=true", "/v1/health"):
                deadline = time.monotonic() + 6
                while True:
                    t0 = time.monotonic()
                    r = await gw.get(query)
                    took = time.monotonic() - t0
                    assert took < 1.0, took
                    body = await r.json()
                    if body["status"] == "busy" or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.3)
                assert r.status == 503 and body["status"] == "busy", body
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        await asyncio.sleep(1.5)
        r = await gw.get("/v1/health")
        body = await r.json()
        assert r.status == 503 and body["status"] == "down"
        v = await gw.post("/v1/data/validate", json={"symbol": "AAPL"})
        assert v.status == 503 and (await v.json())["error"]["code"] == "unavailable"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_metrics_cover_the_tree(stack: Any) -> None:
    await stack.get("/ping")
    text = await (await stack.get("/metrics")).text()
    for name in ('ibhost_up{program="gateway"} 1.0', 'ibhost_up{program="connector"} 1.0',
                 'ibhost_connector_state{state="ready"} 1.0',
                 "ibhost_connector_heartbeat_failures_total",
                 'ibhost_connector_ib_codes_total{code="2104"} 1.0',
                 "ibhost_connector_reconnect_attempts_total 1.0",
                 "ibhost_connector_client_id 1.0",
                 "ibhost_connector_pacing_queue_depth",
                 'ibhost_connector_pacing_delayed_total{rule="window"}',
                 "ibhost_connector_pacing_wait_seconds_bucket",
                 'ibhost_gateway_request_duration_seconds_count{method="GET",route="/ping",'
                 'status="200"}',
                 'ibhost_gateway_auth_failures_total{reason="missing"} 0.0'):
        assert name in text, name


async def test_reads_can_require_a_key(sim: Simulator, tmp_path: Path,
                                       aiohttp_client: Any) -> None:
    async with running_connector(tmp_path, sim), gateway(
            aiohttp_client, tmp_path, sim, gateway__reads_need_key=True) as gw:
        r = await gw.post("/v1/data/validate", json={"symbol": "AAPL"})
        assert r.status == 401
        r = await gw.post("/v1/data/validate", json={"symbol": "AAPL"}, headers=H)
        assert r.status == 200
        assert (await gw.get("/ping")).status == 200  # liveness stays open


async def test_metrics_take_the_key_as_a_bearer_token(sim: Simulator, tmp_path: Path,
                                                     aiohttp_client: Any) -> None:
    """With reads_need_key, Prometheus scrapes /metrics with ``Authorization: Bearer``
    (the only way its scrape config sends a key); other routes still want X-API-Key."""
    async with running_connector(tmp_path, sim), gateway(
            aiohttp_client, tmp_path, sim, gateway__reads_need_key=True) as gw:
        assert (await gw.get("/metrics")).status == 401
        assert (await gw.get("/metrics", headers={"Authorization": f"Basic {KEY}"})).status \
            == 401
        bad = {"Authorization": "Bearer made-up-key-0123456789"}
        assert (await gw.get("/metrics", headers=bad)).status == 403
        for headers in ({"Authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {KEY}"},
                        H):
            r = await gw.get("/metrics", headers=headers)
            assert r.status == 200, headers
            text = await r.text()
            assert 'ibhost_up{program="connector"} 1.0' in text
        r = await gw.post("/v1/data/validate", json={"symbol": "AAPL"},
                          headers={"Authorization": f"Bearer {KEY}"})
        assert r.status == 401
        await gw.post("/v1/orders", json={}, headers=H)  # an order route's series
        text = await (await gw.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})).text()
        assert 'route="/v1/orders"' in text  # a valid bearer key is a trusted caller


async def test_metrics_have_no_created_series(stack: Any) -> None:
    await stack.get("/ping")
    text = await (await stack.get("/metrics", headers=H)).text()
    assert "ibhost_gateway_request_duration_seconds_count" in text
    assert "ibhost_connector_pacing_wait_seconds_count" in text
    created = [line for line in text.splitlines() if "_created" in line]
    assert created == []


def test_non_loopback_bind_needs_a_key(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "ibhost.cli", "gateway", "--home",
                          str(tmp_path), "--bind", "0.0.0.0"], capture_output=True, text=True,
                         timeout=30, env={**os.environ, "IBHOST_GATEWAY_API_KEY": ""})
    assert res.returncode == 2 and "loopback" in res.stderr


def test_every_route_is_in_the_openapi_spec() -> None:
    from ibhost.gateway.openapi import SPEC
    from ibhost.gateway.routes import ROUTES

    missing = [(r.method, r.path) for r in ROUTES
               if r.method.lower() not in SPEC["paths"].get(r.path, {})]
    assert missing == []


NAMES_THE_CONNECTION = ("clientId", "host", "port", "lastIbErrorMessage", "connector")


async def test_what_a_key_shows(stack: Any) -> None:
    """Once keys are configured, a caller without a valid one reads the status, not
    where IB is, the client id, IB's error text, paths or order traffic."""
    for headers in ({}, {"X-API-Key": "made-up-key-0123456789"}):
        h = await (await stack.get("/health", headers=headers)).json()
        assert h["status"] == "ok" and h["healthy"] is True and h["tradingMode"] == "paper"
        assert not set(NAMES_THE_CONNECTION) & set(h), h
        assert h["reason"] == "connected to IB"
        v = await (await stack.get("/v1/health", headers=headers)).json()
        assert v["status"] == "ok" and v["connector"] is None
        ib = await (await stack.get("/v1/system/ib-status", headers=headers)).json()
        assert ib["ib_connected"] is True and ib["client_id"] is None
        d = await (await stack.get("/v1/health/detailed", headers=headers)).json()
        assert set(d) == {"health", "detail"}
        k = await (await stack.get("/health/detailed", headers=headers)).json()
        assert "connector" not in k and k["healthy"] is True
        m = await (await stack.get("/metrics", headers=headers)).text()
        assert 'route="/v1/health"' in m and "ibhost_connector_client_id" in m
        assert 'route="/v1/orders"' not in m and 'route="/orders' not in m
    h = await (await stack.get("/health", headers=H)).json()
    assert h["clientId"] == 1 and h["host"] == "127.0.0.1" and h["connector"]["state"]
    m = await (await stack.get("/metrics", headers=H)).text()
    assert 'ibhost_gateway_request_duration_seconds_count{method="POST",route="/v1/orders"' in m


async def test_without_keys_configured_everything_shows(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with running_connector(tmp_path, sim):
        gw = await aiohttp_client(init_app(make_config(tmp_path, sim)))
        await wait_until(lambda: gw.server.app[HEALTH_KEY].cached()["status"] == "ok")
        h = await (await gw.get("/health")).json()
        assert h["clientId"] == 1 and h["host"] == "127.0.0.1"
        assert h["connector"]["state"] == "ready"


async def test_head_timestamp_then_ktrdr_validate_earns_no_pacing_violation(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    """v1's head timestamp (regular hours) and KTRDR's validation (all hours) of one
    symbol are two different requests at IB, not an identical one: no 162, no 15 s
    wait. And a 162 IB sends anyway is retried inside the deadline, not answered."""
    async with running_connector(tmp_path, sim), gateway(aiohttp_client, tmp_path, sim) as gw:
        h = await gw.get("/v1/data/head-timestamp?symbol=MSFT")
        assert h.status == 200, await h.text()
        v = await (await gw.post("/data/validate", json={"symbol": "MSFT",
                                                         "timeframes": ["1h"]})).json()
        assert v["success"] is True and v["head_timestamps"]["1h"], v
        assert sim.state()["stats"]["violations"] == []
        sim.force_pacing(1)  # IB refuses the next one with a 162 all the same
        r = await gw.get("/v1/data/head-timestamp?symbol=AMZN&useRTH=false")
        assert r.status == 200, await r.text()
        assert sim.state()["forced_pacing_left"] == 0
