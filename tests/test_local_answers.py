"""Answers that need no message to IB: the connection's synchronised state
(positions, portfolio, account summary, open orders, executions) and the caches
of option chains and contract details."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ibhost.connector.main import Connector
from ibhost.connector.session import State
from ibhost.ipc.client import UnixClient
from ibhost.sim import Simulator

from .connector_fixtures import running_connector, wait_until
from .test_gateway import KEY, gateway

H = {"X-API-Key": KEY}
MARKET_DATA = ("reqMktData", "cancelMktData", "reqMarketDataType")


@contextlib.asynccontextmanager
async def stack(aiohttp_client: Any, home: Path, sim: Simulator, **overrides: Any
                ) -> AsyncIterator[tuple[Connector, UnixClient, Any]]:
    async with running_connector(home, sim, **overrides) as (con, client), \
            gateway(aiohttp_client, home, sim, trading__enabled=True,
                    trading__allowed_sec_types="STK", **overrides) as gw:
        yield con, client, gw


def requests(sim: Simulator) -> dict[str, int]:
    return dict(sim.state()["stats"]["requests"])


async def test_state_reads_send_nothing_to_ib_and_pass_a_full_queue(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    # four messages a second (heartbeats, which count too, every 5 s): 100 queued
    # snapshots take 25 s to drain
    async with stack(aiohttp_client, tmp_path, sim, pacing__messages_per_second=4,
                     ib__heartbeat_interval=5) as (con, client, gw):
        r = await gw.post("/order", headers=H, json={
            "symbol": "AAPL", "action": "BUY", "quantity": 3, "orderType": "LMT",
            "limitPrice": 400.0, "secType": "STK", "uid": "local-1"})
        assert r.status == 200
        rest = await gw.post("/order", headers=H, json={  # rests: an open order
            "symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT",
            "limitPrice": 1.0, "secType": "STK", "uid": "local-2"})
        assert rest.status == 200
        # the account summary is subscribed once per connection, in the background
        await wait_until(lambda: requests(sim).get("reqAccountSummary", 0) >= 1, 10)
        await wait_until(lambda: any(p.position for p in con.service.ib.positions()), 10)
        await wait_until(lambda: con.service.account._summary_loaded, 10)
        before = requests(sim)
        # each with its own wait: snapshots that ask the same thing at once are shared
        queued = [asyncio.create_task(client.request("POST", "/snapshot", json_body={
            "symbol": "AAPL", "wait": 2.0 + i / 1000})) for i in range(100)]
        try:
            await wait_until(lambda: con.scheduler.depth >= 90, 10)
            answers = {}
            for path in ("/positions", "/portfolio", "/account-summary", "/orders",
                         "/executions", "/v1/positions", "/v1/orders"):
                resp = await gw.get(path, headers=H)
                assert resp.status == 200, (path, await resp.text())
                assert float(resp.headers["X-Ibhost-State-Age"]) >= 0, path
                answers[path] = await resp.json()
                # answered while the queue is still full: it never waited in it
                assert con.scheduler.depth >= 80, path
            assert not any(t.done() for t in queued)
        finally:
            for t in queued:
                t.cancel()
            await asyncio.gather(*queued, return_exceptions=True)
        after = requests(sim)
        moved = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)
                 if k not in MARKET_DATA and after.get(k, 0) != before.get(k, 0)}
        assert moved == {}, moved  # no message to IB for any of them
    pos = [p for p in answers["/positions"]["positions"] if p["symbol"] == "AAPL"]
    assert pos and pos[0]["quantity"] == 3 and pos[0]["companyName"] == "APPLE INC"
    assert [o for o in answers["/orders"]["orders"] if o["orderRef"] == "local-2"]
    assert [e for e in answers["/executions"]["executions"] if e["orderRef"] == "local-1"]
    assert isinstance(answers["/account-summary"]["NetLiquidation"], float)


async def test_executions_from_ib_on_request(sim: Simulator, tmp_path: Path) -> None:
    """``source=ib`` asks IB (every client's fills) instead of the library's copy."""
    async with running_connector(tmp_path, sim) as (con, client):
        await client.request("POST", "/orders", json_body={
            "symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT",
            "limitPrice": 400.0, "orderRef": "ex-1"})
        await wait_until(lambda: con.service.ib.fills(), 5)
        before = requests(sim).get("reqExecutions", 0)
        local = await client.request("GET", "/executions")
        assert requests(sim).get("reqExecutions", 0) == before
        remote = await client.request("GET", "/executions", params={"source": "ib"})
        assert requests(sim)["reqExecutions"] == before + 1
        assert [e["execId"] for e in local] == [e["execId"] for e in remote]
        mine = await client.request("GET", "/orders", params={"source": "ib"})
        assert isinstance(mine, list)


async def test_chains_and_details_are_cached_until_a_reconnect(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with stack(aiohttp_client, tmp_path, sim) as (con, client, gw):
        first = await gw.get("/option-chain/AAPL", headers=H)
        assert first.status == 200 and float(first.headers["X-Ibhost-State-Age"]) == 0.0
        second = await gw.get("/option-chain/AAPL", headers=H)
        assert second.status == 200 and await second.json() == await first.json()
        assert "X-Ibhost-State-Age" in second.headers
        assert requests(sim)["reqSecDefOptParams"] == 1
        details = requests(sim)["reqContractDetails"]
        for _ in range(2):
            v = await gw.post("/v1/data/validate", headers=H, json={"symbol": "AAPL"})
            assert v.status == 200
        assert requests(sim)["reqContractDetails"] == details  # resolved once already
        fresh = await gw.get("/option-chain/AAPL?maxAge=0", headers=H)  # a caller's limit
        assert fresh.status == 200 and requests(sim)["reqSecDefOptParams"] == 2
        old_since = con.session.diag.connectedSince
        await client.request("POST", "/reconnect", json_body={"reason": "test"})
        await wait_until(lambda: con.session.state == State.READY
                         and con.session.diag.connectedSince != old_since, 10)
        again = await gw.get("/option-chain/AAPL", headers=H)
        assert again.status == 200
        assert requests(sim)["reqSecDefOptParams"] == 3  # a new connection asks IB again
        assert requests(sim)["reqContractDetails"] == details + 1


async def test_a_snapshot_of_a_streamed_contract_is_answered_from_its_stream(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    """A quote that a live subscription already holds needs no new request at IB: the
    snapshot is the stream's newest state with its age. Generic ticks the stream does
    not carry still go to IB."""
    async with stack(aiohttp_client, tmp_path, sim) as (con, client, gw):
        held = await client.request("POST", "/subscriptions", json_body={"symbol": "AAPL"})
        key = held["key"]
        await wait_until(lambda: con.streams.subs[key].updates >= 2, 10)
        before = requests(sim).get("reqMktData", 0)
        for _ in range(3):
            r = await gw.post("/v1/market/snapshot", headers=H, json={"symbol": "AAPL"})
            assert r.status == 200, await r.text()
            q = await r.json()
            assert q["symbol"] == "AAPL" and q["bid"] and q["ask"] and q["time"]
            assert 0 <= float(r.headers["X-Ibhost-State-Age"]) < 5
        bridge = await gw.get("/market-data/AAPL", headers=H)
        assert bridge.status == 200 and (await bridge.json())["bid"]
        assert requests(sim).get("reqMktData", 0) == before  # nothing asked of IB
        # implied volatility (generic tick 106) is not what the stream carries: IB is asked
        r = await gw.post("/v1/market/snapshot", headers=H,
                          json={"symbol": "AAPL", "genericTicks": [106]})
        assert r.status == 200
        assert requests(sim).get("reqMktData", 0) == before + 1
        # another contract, not streamed: IB is asked
        r = await gw.post("/v1/market/snapshot", headers=H, json={"symbol": "MSFT"})
        assert r.status == 200 and requests(sim).get("reqMktData", 0) == before + 2
