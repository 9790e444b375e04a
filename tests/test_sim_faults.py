"""Every fault, triggered; the effect a real ib_async client sees, asserted."""

from __future__ import annotations

import asyncio
import time

import pytest
from ib_async import IB, LimitOrder, Stock

from ibhost.sim import Simulator

from .conftest import eventually

AAPL = Stock("AAPL", "SMART", "USD", conId=265598)


def disconnected_flag(client: IB) -> asyncio.Event:
    ev = asyncio.Event()
    client.disconnectedEvent += lambda: ev.set()
    return ev


async def test_drop_fires_disconnected_event(sim: Simulator, ib) -> None:
    client, _ = ib
    gone = disconnected_flag(client)
    assert sim.drop() == 1
    await asyncio.wait_for(gone.wait(), 3)
    assert not client.isConnected()
    # the gateway is still there: a new connection works
    again = IB()
    await again.connectAsync("127.0.0.1", sim.port, clientId=1)
    again.disconnect()


async def test_freeze_makes_requests_time_out_until_thaw(sim: Simulator, ib) -> None:
    client, _ = ib
    sim.freeze()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(client.reqCurrentTimeAsync(), 0.5)
    assert client.isConnected()  # half-open: the socket stays up
    sim.thaw()
    t = await asyncio.wait_for(client.reqCurrentTimeAsync(), 2)
    assert t is not None


async def test_frozen_gateway_accepts_tcp_but_never_handshakes(sim: Simulator) -> None:
    sim.freeze()
    client = IB()
    with pytest.raises((asyncio.TimeoutError, TimeoutError, ConnectionError)):
        await client.connectAsync("127.0.0.1", sim.port, clientId=5, timeout=0.5)
    sim.thaw()


async def test_close_port_for_n_seconds(sim: Simulator, ib) -> None:
    client, _ = ib
    gone = disconnected_flag(client)
    port = sim.port
    await sim.close_port(0.6)
    await asyncio.wait_for(gone.wait(), 3)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await eventually(lambda: sim.listening, timeout=3)
    back = IB()
    await back.connectAsync("127.0.0.1", port, clientId=1)
    back.disconnect()


async def test_restart_loses_all_state(sim: Simulator, connect) -> None:
    client, _ = await connect(3)
    [c] = await client.qualifyContractsAsync(AAPL)
    trade = client.placeOrder(c, LimitOrder("BUY", 1, 1.0))
    await eventually(lambda: trade.orderStatus.status == "Submitted")
    assert sim.broker.next_valid_id(3) > 1
    gone = disconnected_flag(client)
    await sim.restart(downtime=0.3)
    await asyncio.wait_for(gone.wait(), 3)
    await eventually(lambda: sim.listening, timeout=3)
    fresh, _ = await connect(3)
    assert await fresh.reqAllOpenOrdersAsync() == []
    assert fresh.client._reqIdSeq >= 1
    assert sim.state()["orders"] == [] and sim.state()["stats"]["restarts"] == 1


async def test_delay_ready(sim: Simulator, connect) -> None:
    sim.delay_ready(0.8)
    t0 = time.monotonic()
    client, _ = await connect(4)
    assert time.monotonic() - t0 >= 0.8
    assert client.isConnected()
    # ib_async waits for readiness: nothing reached the gateway early
    assert sim.state()["stats"]["requests_before_ready"] == 0


async def test_requests_before_ready_are_counted(sim: Simulator) -> None:
    sim.delay_ready(0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    from ibhost.sim.protocol import frame, frame_raw

    writer.write(b"API\0" + frame_raw(["v157..178"]))
    writer.write(frame([71, 2, 9, ""]) + frame([49, 1]))  # startApi, then reqCurrentTime
    await writer.drain()
    await eventually(lambda: sim.stats.requests_before_ready == 1)
    writer.close()


@pytest.mark.parametrize("restore", ["1101", "1102"])
async def test_connectivity_lost_and_restored(sim: Simulator, ib, restore: str) -> None:
    client, errors = ib
    [c] = await client.qualifyContractsAsync(AAPL)
    ticker = client.reqMktData(c)
    await eventually(lambda: ticker.last > 0)
    sim.connectivity_lost(restore, after=0.4)
    await errors.wait_for(1100)
    assert client.isConnected()  # 1100 keeps the socket
    stamp = ticker.time
    await asyncio.sleep(0.2)
    assert ticker.time == stamp  # no data while IB is unreachable
    await errors.wait_for(int(restore))
    if restore == "1102":
        await eventually(lambda: ticker.time != stamp)  # data maintained: it streams again
    else:
        await asyncio.sleep(0.3)
        assert ticker.time == stamp  # data lost: the client must re-request
        client.cancelMktData(c)
        again = client.reqMktData(c)
        await eventually(lambda: again.time is not None and again.time != stamp)


@pytest.mark.parametrize(("code", "ok"), [(2103, 2104), (2105, 2106), (2157, 2158)])
async def test_farm_broken_then_ok(sim: Simulator, ib, code: int, ok: int) -> None:
    client, errors = ib
    await errors.wait_for(ok)  # the OK notice at connect
    errors.items.clear()
    sim.farm_broken(code, after=0.2)
    _, _, text = await errors.wait_for(code)
    assert "broken" in text
    assert sim.state()["farms"][text.split(":")[-1]] is False
    await errors.wait_for(ok)
    assert all(sim.state()["farms"].values())


async def test_2110(sim: Simulator, ib) -> None:
    client, errors = ib
    sim.farm_broken(2110, after=0.2)
    await errors.wait_for(2110)
    errors.items.clear()
    await errors.wait_for(2104)
    assert client.isConnected()


async def test_competing_session_10197(sim: Simulator, ib) -> None:
    client, errors = ib
    [c] = await client.qualifyContractsAsync(AAPL)
    sim.set_competing_session(True)
    client.reqMktData(c, "", snapshot=True)
    _, _, text = await errors.wait_for(10197)
    assert "competing live session" in text
    sim.set_competing_session(False)
    [t] = await client.reqTickersAsync(c)
    assert t.last > 0


async def test_port_reset_1300(sim: Simulator, ib) -> None:
    client, errors = ib
    gone = disconnected_flag(client)
    sim.port_reset()
    _, _, text = await errors.wait_for(1300)
    assert str(sim.port) in text
    await asyncio.wait_for(gone.wait(), 3)


async def test_forced_pacing(sim: Simulator, ib) -> None:
    client, errors = ib
    sim.force_pacing(2)
    from ib_async import RequestError

    for _ in range(2):
        with pytest.raises(RequestError) as ei:
            await client.reqHistoricalDataAsync(AAPL, "", "1 D", "1 hour", "TRADES", True)
        assert ei.value.code == 162 and "pacing violation" in ei.value.message
    bars = await client.reqHistoricalDataAsync(AAPL, "", "1 D", "1 hour", "TRADES", True)
    assert bars
    assert sim.state()["stats"]["violations_by_rule"] == {"forced": 2}


async def test_slow_replies(sim: Simulator, ib) -> None:
    client, _ = ib
    sim.slow(300)
    t0 = time.monotonic()
    await client.reqCurrentTimeAsync()
    assert time.monotonic() - t0 >= 0.3
    sim.slow(0)


async def test_duplicate_client_id_326(sim: Simulator, connect) -> None:
    await connect(21)
    dup = IB()
    with pytest.raises((ConnectionError, asyncio.TimeoutError, TimeoutError)):
        await dup.connectAsync("127.0.0.1", sim.port, clientId=21, timeout=2)
    assert not dup.isConnected()
    assert sim.state()["stats"]["clashes"] == [21]
    assert sim.state()["stats"]["errors_sent"]["326"] == 1


async def test_thirty_two_clients(sim: Simulator, connect) -> None:
    for cid in range(32):
        await connect(100 + cid)
    assert len(sim.state()["clients"]) == 32
    extra = IB()
    with pytest.raises((ConnectionError, asyncio.TimeoutError, TimeoutError)):
        await extra.connectAsync("127.0.0.1", sim.port, clientId=999, timeout=1)
