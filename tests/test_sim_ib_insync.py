"""The simulator through unmodified ib_insync 0.9.86 (server version 176)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

ib_insync = pytest.importorskip("ib_insync")

from ibhost.sim import Simulator  # noqa: E402

from .conftest import eventually  # noqa: E402


@pytest.fixture
async def insync(sim: Simulator):
    ib = ib_insync.IB()
    await ib.connectAsync("127.0.0.1", sim.port, clientId=31, timeout=5)
    yield ib
    ib.disconnect()


async def test_connect(insync, sim: Simulator) -> None:
    assert insync.isConnected()
    assert insync.client.serverVersion() == 176
    assert insync.managedAccounts() == ["DU1234567"]
    assert [c["version"] for c in sim.state()["clients"]] == [176]


async def test_contract_details(insync) -> None:
    cds = await insync.reqContractDetailsAsync(ib_insync.Stock("SPY", "SMART", "USD"))
    assert cds[0].contract.conId == 756733
    assert cds[0].contract.primaryExchange == "ARCA"
    assert cds[0].minSize > 0  # fields gated at 164 parse at 176


async def test_historical_bars(insync) -> None:
    bars = await insync.reqHistoricalDataAsync(
        ib_insync.Stock("AAPL", "SMART", "USD"), "20251121 16:00:00 US/Eastern", "1 D",
        "15 mins", "TRADES", True)
    assert len(bars) == 26
    assert bars[0].date == dt.datetime(2025, 11, 21, 9, 30, tzinfo=bars[0].date.tzinfo)
    assert all(b.low <= b.open <= b.high for b in bars)


async def test_order_fill_and_executions(insync) -> None:
    [c] = await insync.qualifyContractsAsync(ib_insync.Stock("AAPL", "SMART", "USD"))
    trade = insync.placeOrder(c, ib_insync.MarketOrder("BUY", 3))
    await eventually(lambda: trade.isDone())
    assert trade.orderStatus.status == "Filled"
    # ib_insync unpacks execDetails by exact length: the 178 field must be absent at 176
    fills = await insync.reqExecutionsAsync()
    assert len(fills) == 1 and fills[0].execution.shares == 3
    await eventually(lambda: insync.positions())
    assert insync.positions()[0].position == 3


async def test_reconnect_sync_with_history(sim: Simulator, insync) -> None:
    [c] = await insync.qualifyContractsAsync(ib_insync.Stock("MSFT", "SMART", "USD"))
    trade = insync.placeOrder(c, ib_insync.MarketOrder("BUY", 1))
    await eventually(lambda: trade.isDone())
    rest = insync.placeOrder(c, ib_insync.LimitOrder("BUY", 1, 1.0))
    await eventually(lambda: rest.orderStatus.status == "Submitted")
    insync.disconnect()
    again = ib_insync.IB()
    # completed orders, open orders and executions must all parse at 176
    await again.connectAsync("127.0.0.1", sim.port, clientId=31, timeout=5)
    try:
        assert len(again.openTrades()) == 1
        assert len(again.fills()) == 1
        done = await asyncio.wait_for(again.reqCompletedOrdersAsync(False), 3)
        assert [t.orderStatus.status for t in done] == ["Filled"]
    finally:
        again.disconnect()
