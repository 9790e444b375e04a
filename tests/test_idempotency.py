"""Keyed orders: the atomic writer under concurrency, the idempotency store, and the
order pipeline against the real simulator, connector and gateway."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ibhost.files import atomic_write
from ibhost.gateway.idempotency import Entry, IdempotencyStore
from ibhost.gateway.keys import IDEMPOTENCY_KEY
from ibhost.sim import Simulator

from .connector_fixtures import running_connector, wait_until
from .test_gateway import H, gateway

LMT = {"symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT",
       "limitPrice": 1.0}
# marketable: it fills at once, and unlike MKT it needs no snapshot for the notional guard
FILLS = {"symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT",
         "limitPrice": 1000.0}


class Clock:
    """An injected clock: time moves only when a test moves it."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_atomic_write_from_many_threads_leaves_one_whole_payload(tmp_path: Path) -> None:
    path = tmp_path / "d" / "state.json"
    payloads = [bytes([65 + i]) * (4096 * (i + 1)) for i in range(16)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(payloads))

    def writer(data: bytes) -> None:
        start.wait()
        try:
            for _ in range(20):
                atomic_write(path, data)
        except BaseException as e:  # collected, asserted on below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_bytes() in payloads
    assert os.listdir(path.parent) == ["state.json"]  # no temp file left behind
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_atomic_write_removes_its_temp_file_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "dir-in-the-way"
    (target / "child").mkdir(parents=True)  # a rename over a non-empty directory fails
    with pytest.raises(OSError):
        atomic_write(target, b"x")
    assert sorted(os.listdir(tmp_path)) == ["dir-in-the-way"]


# --- the store on its own --------------------------------------------------------------

async def test_entries_expire_by_their_ttl_and_are_pruned_periodically(
        tmp_path: Path) -> None:
    clock = Clock()
    store = IdempotencyStore(tmp_path / "idem.sqlite3", keep=100, prune_every=50,
                             clock=clock)
    await store.put("long", "fp", 201, {"orderId": 1})
    await store.put("short", "fp", 201, {"orderId": 2}, ttl=10)
    clock.now += 9.9
    assert (await store.get("short", "fp")) is not None
    clock.now += 0.1
    assert await store.get("short", "fp") is None  # expired: gone for readers at once
    assert await store.count() == 2  # but pruned only every prune_every seconds
    await store.put("other", "fp", 201, {"orderId": 3})
    assert await store.count() == 3
    clock.now += 50
    await store.put("later", "fp", 201, {"orderId": 4})  # the periodic prune runs
    assert await store.count() == 3
    clock.now += 100
    assert await store.get("long", "fp") is None
    await store.put("short", "fp2", 201, {"orderId": 5})  # an expired key is free again
    assert (await store.get("short", "fp2")).body == {"orderId": 5}  # type: ignore[union-attr]
    await store.close()


async def test_the_store_is_bounded_oldest_first_and_a_put_writes_one_row(
        tmp_path: Path) -> None:
    clock = Clock()
    store = IdempotencyStore(tmp_path / "idem.sqlite3", max_rows=1000, clock=clock)
    await store.put_many(Entry(f"k{i}", "fp", 201, {"orderId": i}, clock.now,
                               clock.now + 3600) for i in range(1000))
    written = store.rows_written
    for i in range(1000, 1010):
        clock.now += 1
        await store.put(f"k{i}", "fp", 201, {"orderId": i})
    assert store.rows_written - written == 10  # one row a put, not the whole store
    assert await store.count() == 1000
    assert await store.get("k9", "fp") is None and await store.get("k10", "fp") is not None
    assert await store.get("k1009", "fp") is not None
    await store.close()
    reopened = IdempotencyStore(tmp_path / "idem.sqlite3", max_rows=1000, clock=clock)
    assert (await reopened.get("k500", "fp")).body == {"orderId": 500}  # type: ignore[union-attr]
    await reopened.close()


async def test_old_json_store_is_imported_once_and_a_corrupt_file_moved_aside(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    old = tmp_path / "idempotency.json"
    old.write_text(json.dumps({
        "live": {"fingerprint": "fp", "status": 201, "body": {"orderId": 1},
                 "at": clock.now - 10, "ttl": 100},
        "dead": {"fingerprint": "fp", "status": 201, "body": {"orderId": 2},
                 "at": clock.now - 200, "ttl": 100}}))
    # a setting naming the old file is taken to mean the SQLite file beside it
    store = IdempotencyStore(old, clock=clock)
    assert store.path == tmp_path / "idempotency.sqlite3"
    assert (await store.get("live", "fp")).body == {"orderId": 1}  # type: ignore[union-attr]
    assert await store.get("dead", "fp") is None and await store.count() == 1
    await store.close()
    assert not old.exists() and (tmp_path / "idempotency.json.imported").exists()
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600

    store.path.write_bytes(b"this is not a database" * 100)
    (tmp_path / "idempotency.sqlite3-wal").unlink(missing_ok=True)
    fresh = IdempotencyStore(store.path, clock=clock)
    assert await fresh.get("live", "fp") is None
    await fresh.put("k", "fp", 201, {"orderId": 3})
    assert await fresh.count() == 1
    await fresh.close()
    assert (tmp_path / "idempotency.sqlite3.corrupt").read_bytes().startswith(b"this is")
    assert any("damaged" in r.getMessage() for r in caplog.records)


# --- keyed orders through the real simulator, connector and gateway ---------------------

async def test_a_replay_answers_the_orders_current_status_not_the_frozen_one(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    hdrs = {**H, "Idempotency-Key": "caught-by-a-freeze"}
    # heartbeats slower than the freeze: the connection stays up, answers just stop
    async with running_connector(tmp_path, sim, ib__heartbeat_interval=60,
                                 ib__heartbeat_timeout=60), \
            gateway(aiohttp_client, tmp_path, sim, trading__enabled=True) as gw:
        warm = await gw.post("/v1/orders", json=LMT, headers={**H, "Idempotency-Key": "w"})
        assert warm.status == 201  # the contract is resolved and cached
        sim.freeze()
        try:
            first = await gw.post("/v1/orders", json=FILLS, headers=hdrs)
        finally:
            sim.thaw()
        caught = await first.json()
        assert first.status == 201 and caught["status"] == "PendingSubmit"
        assert caught["permId"] == 0
        await wait_until(lambda: len(sim.state()["executions"]) == 1, timeout=10)
        again = await gw.post("/v1/orders", json=FILLS, headers=hdrs)
        now = await again.json()
        assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Stale" not in again.headers
        assert now["status"] == "Filled" and now["permId"] != 0
        assert now["orderId"] == caught["orderId"]
        stored = await gw.app[IDEMPOTENCY_KEY].get("caught-by-a-freeze", _fp(gw, hdrs))
        assert stored is not None and stored.body["status"] == "Filled"  # refreshed
    # the connector is gone: the stored (refreshed) answer, marked as possibly stale
    stale = await gw.post("/v1/orders", json=FILLS, headers=hdrs)
    assert stale.status == 201 and stale.headers["Idempotent-Stale"] == "true"
    assert (await stale.json())["status"] == "Filled"
    assert len(sim.state()["executions"]) == 1


async def test_an_order_cut_off_before_ibs_acknowledgement_is_not_answered_as_placed(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    """The connection drops after the order left and before IB acknowledged it: the
    library forgets the connection's orders, so "PendingSubmit" would stand for an
    order that does not exist. The answer says it is not known (503), and a retry with
    the same key, once connected again, places it once."""
    hdrs = {**H, "Idempotency-Key": "cut-by-a-drop"}
    async with running_connector(tmp_path, sim, ib__heartbeat_interval=60,
                                 ib__heartbeat_timeout=60) as (con, _), \
            gateway(aiohttp_client, tmp_path, sim, trading__enabled=True) as gw:
        warm = await gw.post("/v1/orders", json=LMT, headers={**H, "Idempotency-Key": "w"})
        assert warm.status == 201  # the contract is resolved and cached
        sim.freeze()
        try:
            pending = asyncio.ensure_future(gw.post("/v1/orders", json=LMT, headers=hdrs))
            await wait_until(lambda: any(t.order.orderRef == "cut-by-a-drop"
                                         for t in con.service.ib.trades()), 5)
            sim.drop()
        finally:
            sim.thaw()
        first = await pending
        body = await first.json()
        assert first.status == 503 and body["error"]["code"] == "unavailable", body
        assert "not known" in body["error"]["message"]
        mine = [o for o in sim.state()["orders"] if o["orderRef"] == "cut-by-a-drop"]
        assert mine == []
        await wait_until(lambda: con.session.usable, 10)
        again = await gw.post("/v1/orders", json=LMT, headers=hdrs)
        assert again.status == 201 and "Idempotent-Replayed" not in again.headers
        mine = [o for o in sim.state()["orders"] if o["orderRef"] == "cut-by-a-drop"]
        assert len(mine) == 1


def _fp(gw: Any, hdrs: dict[str, str]) -> str:
    """The fingerprint the gateway keeps for FILLS sent with ``hdrs``' key."""
    from ibhost.gateway.idempotency import fingerprint
    from ibhost.gateway.orders import fields
    fwd = fields(dict(FILLS))
    fwd["orderRef"] = hdrs["Idempotency-Key"]
    return fingerprint(fwd)


async def test_a_failed_store_write_still_answers_the_order(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    hdrs = {**H, "Idempotency-Key": "store-down"}
    async with running_connector(tmp_path, sim), \
            gateway(aiohttp_client, tmp_path, sim, trading__enabled=True) as gw:
        store = gw.app[IDEMPOTENCY_KEY]

        def broken(entries: list[Entry]) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(store, "_put", broken)
        r = await gw.post("/v1/orders", json=LMT, headers=hdrs)
        assert r.status == 201 and (await r.json())["permId"] != 0
        metrics = await (await gw.get("/metrics")).text()
        assert 'ibhost_gateway_idempotency_store_errors_total{op="write"} 1.0' in metrics
        # nothing stored: the retry reaches the connector, which finds the orderRef
        again = await gw.post("/v1/orders", json=LMT, headers=hdrs)
        assert again.status == 200 and (await again.json())["duplicate"] is True
    assert len(sim.state()["orders"]) == 1


async def test_keyed_orders_against_a_full_store_cost_what_they_cost_against_an_empty_one(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    orders, clients, prefill = 500, 20, 20_000
    cap = prefill + orders // 2
    over = {"trading__enabled": True, "gateway__idempotency_max_keys": cap}

    async def run(gw: Any, tag: str, n: int = orders) -> list[float]:
        todo = iter(range(n))
        took: list[float] = []
        statuses: list[int] = []

        async def client() -> None:
            for i in todo:
                t0 = time.perf_counter()
                r = await gw.post("/v1/orders", json=LMT,
                                  headers={**H, "Idempotency-Key": f"{tag}-{i}"})
                await r.read()
                took.append(time.perf_counter() - t0)
                statuses.append(r.status)

        await asyncio.gather(*(client() for _ in range(clients)))
        assert sorted(set(statuses)) == [201], statuses
        return took

    async with running_connector(tmp_path, sim):
        async with gateway(aiohttp_client, tmp_path, sim, **over,
                           gateway__idempotency_file="data/empty.sqlite3") as empty, \
                gateway(aiohttp_client, tmp_path, sim, **over,
                        gateway__idempotency_file="data/full.sqlite3") as full:
            store = full.app[IDEMPOTENCY_KEY]
            now = store.clock()
            await store.put_many(Entry(f"old-{i}", "0" * 64, 201, {"orderId": i, "pad": "x"
                                                                   * 200}, now, now + 86400)
                                 for i in range(prefill))
            assert await store.count() == prefill
            await run(empty, "warm", clients)  # the contract is resolved once
            written = store.rows_written
            base = statistics.median(await run(empty, "e"))
            loaded = statistics.median(await run(full, "f"))
            assert store.rows_written - written == orders  # one row an order
            assert await store.count() == cap
    print(f"order p50: empty store {base * 1000:.1f} ms, {prefill} keys "
          f"{loaded * 1000:.1f} ms")
    assert loaded <= 1.2 * base, (base, loaded)
