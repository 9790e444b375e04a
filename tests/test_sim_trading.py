"""Market data, orders, executions and positions through unmodified ib_async."""

from __future__ import annotations

import asyncio
import math

import pytest
from ib_async import (
    ExecutionFilter,
    LimitOrder,
    MarketOrder,
    Option,
    Stock,
    StopOrder,
)

from ibhost.sim import Simulator

from .conftest import eventually

AAPL = Stock("AAPL", "SMART", "USD")


async def test_snapshot_ends_with_tick_snapshot_end(ib) -> None:
    client, _ = ib
    [contract] = await client.qualifyContractsAsync(Stock("MSFT", "SMART", "USD"))
    # reqTickersAsync waits for tickSnapshotEnd; it would hang without it
    [t] = await asyncio.wait_for(client.reqTickersAsync(contract), 3)
    assert 0 < t.bid < t.ask
    assert t.bid <= t.last <= t.ask
    assert t.volume > 0
    assert t.marketDataType == 1


async def test_snapshot_with_generic_ticks_is_321(ib) -> None:
    client, errors = ib
    [c] = await client.qualifyContractsAsync(AAPL)
    client.reqMktData(c, "100,101", snapshot=True)
    _, _, text = await errors.wait_for(321)
    assert "generic ticks" in text


async def test_streaming_with_generic_ticks_and_cancel(sim: Simulator, ib) -> None:
    client, _ = ib
    [c] = await client.qualifyContractsAsync(AAPL)
    t = client.reqMktData(c, "100,101,104,106")
    await eventually(lambda: not math.isnan(t.histVolatility) and t.callOpenInterest > 0)
    assert 0 < t.histVolatility < 1 and 0 < t.impliedVolatility < 1
    assert t.callVolume > 0 and t.putVolume > 0
    first = t.time
    await eventually(lambda: t.time != first)  # it streams
    client.cancelMktData(c)
    await eventually(lambda: not any(cl["subscriptions"] for cl in sim.state()["clients"]))


async def test_option_greeks(ib) -> None:
    client, _ = ib
    chains = await client.reqSecDefOptParamsAsync("AAPL", "", "STK", 265598)
    smart = next(ch for ch in chains if ch.exchange == "SMART")
    atm = smart.strikes[len(smart.strikes) // 2]
    [opt] = await client.qualifyContractsAsync(
        Option("AAPL", smart.expirations[3], atm, "C", "SMART"))
    [t] = await asyncio.wait_for(client.reqTickersAsync(opt), 3)
    g = t.modelGreeks
    assert g is not None
    assert 0 < g.delta < 1 and g.gamma > 0 and g.vega > 0 and g.theta < 0
    assert 0.05 < g.impliedVol < 2
    assert g.undPrice > 0
    [put] = await client.qualifyContractsAsync(
        Option("AAPL", smart.expirations[3], atm, "P", "SMART"))
    [tp] = await asyncio.wait_for(client.reqTickersAsync(put), 3)
    assert tp.modelGreeks is not None and -1 < tp.modelGreeks.delta < 0


@pytest.mark.parametrize("code", [354, 10089])
async def test_no_subscription_live_is_an_error(sim: Simulator, ib, code: int) -> None:
    client, errors = ib
    sim.set_no_subscription("TSLA", code)
    [c] = await client.qualifyContractsAsync(Stock("TSLA", "SMART", "USD"))
    client.reqMktData(c, "", snapshot=True)
    await errors.wait_for(code)


async def test_no_subscription_delayed_data(sim: Simulator, ib) -> None:
    client, errors = ib
    sim.set_no_subscription("TSLA", 10089)
    client.reqMarketDataType(3)
    [c] = await client.qualifyContractsAsync(Stock("TSLA", "SMART", "USD"))
    [t] = await asyncio.wait_for(client.reqTickersAsync(c), 3)
    await errors.wait_for(10167)
    assert t.marketDataType == 3
    assert 0 < t.bid < t.ask  # delayed bid/ask ticks (66/67) fill the same fields
    assert {tk.tickType for tk in t.ticks} >= {66, 67, 68}


async def test_market_order_fills_and_books(sim: Simulator, ib) -> None:
    client, _ = ib
    [c] = await client.qualifyContractsAsync(AAPL)
    order = MarketOrder("BUY", 100)
    order.orderRef = "ref-1"
    trade = client.placeOrder(c, order)
    await eventually(lambda: trade.isDone())
    assert trade.orderStatus.status == "Filled"
    assert trade.orderStatus.filled == 100
    [fill] = trade.fills
    assert fill.execution.side == "BOT" and fill.execution.orderRef == "ref-1"
    await eventually(lambda: fill.commissionReport.commission > 0)
    await eventually(lambda: client.positions())
    [pos] = client.positions()
    assert pos.position == 100 and pos.contract.conId == 265598
    await eventually(lambda: client.portfolio())
    assert client.portfolio()[0].position == 100
    # sell half: realized P&L is reported and position shrinks
    sell = client.placeOrder(c, MarketOrder("SELL", 40))
    await eventually(lambda: sell.isDone())
    await eventually(lambda: client.positions()[0].position == 60)
    st = sim.state()
    assert st["positions"] == {"AAPL": 60.0}
    assert [e["side"] for e in st["executions"]] == ["BUY", "SELL"]


async def test_limit_order_rests_then_cancels(ib, sim: Simulator) -> None:
    client, errors = ib
    [c] = await client.qualifyContractsAsync(AAPL)
    trade = client.placeOrder(c, LimitOrder("BUY", 10, 1.00))
    await eventually(lambda: trade.orderStatus.status == "Submitted")
    opens = await client.reqAllOpenOrdersAsync()
    assert [o.order.orderId for o in opens] == [trade.order.orderId]
    client.cancelOrder(trade.order)
    await eventually(lambda: trade.orderStatus.status == "Cancelled")
    await errors.wait_for(202)
    assert await client.reqAllOpenOrdersAsync() == []


async def test_marketable_limit_and_stop_orders(ib) -> None:
    client, _ = ib
    [c] = await client.qualifyContractsAsync(AAPL)
    [t] = await client.reqTickersAsync(c)
    buy = client.placeOrder(c, LimitOrder("BUY", 5, round(t.ask * 1.05, 2)))
    await eventually(lambda: buy.orderStatus.status == "Filled")
    assert buy.orderStatus.avgFillPrice <= t.ask * 1.05
    stop = client.placeOrder(c, StopOrder("SELL", 5, round(t.bid * 0.5, 2)))
    await eventually(lambda: stop.orderStatus.status == "PreSubmitted")
    await asyncio.sleep(0.2)
    assert stop.orderStatus.status == "PreSubmitted"  # rests until triggered or cancelled


async def test_option_order_fills(ib, sim: Simulator) -> None:
    client, _ = ib
    chains = await client.reqSecDefOptParamsAsync("AMZN", "", "STK", 3691937)
    smart = next(ch for ch in chains if ch.exchange == "SMART")
    [opt] = await client.qualifyContractsAsync(
        Option("AMZN", smart.expirations[2], smart.strikes[20], "P", "SMART"))
    trade = client.placeOrder(opt, MarketOrder("BUY", 2))
    await eventually(lambda: trade.isDone())
    assert trade.orderStatus.status == "Filled"
    assert any(p.contract.secType == "OPT" for p in client.positions())


async def test_order_ids_must_increase(ib) -> None:
    client, errors = ib
    [c] = await client.qualifyContractsAsync(AAPL)
    first = client.placeOrder(c, LimitOrder("BUY", 1, 1.0))
    await eventually(lambda: first.orderStatus.status == "Submitted")
    client.cancelOrder(first.order)
    await errors.wait_for(202)
    # reuse the (now cancelled) id: IB refuses a duplicate order id
    reused = LimitOrder("BUY", 1, 1.0)
    reused.orderId = first.order.orderId
    client.client.placeOrder(reused.orderId, c, reused)
    req_id, _, text = await errors.wait_for(103)
    assert req_id == first.order.orderId and text == "Duplicate order id"
    # an id below the next valid one that was never used is refused the same way
    errors.items.clear()
    low = LimitOrder("BUY", 1, 1.0)
    client.client.placeOrder(first.order.orderId - 1, c, low)
    await errors.wait_for(103)


async def test_modify_open_order(ib, sim: Simulator) -> None:
    client, _ = ib
    [c] = await client.qualifyContractsAsync(AAPL)
    order = LimitOrder("BUY", 10, 1.0)
    trade = client.placeOrder(c, order)
    await eventually(lambda: trade.orderStatus.status == "Submitted")
    order.totalQuantity = 20
    client.placeOrder(c, order)
    await eventually(lambda: sim.state()["orders"][0]["totalQuantity"] == 20)
    assert len(sim.state()["orders"]) == 1


async def test_executions_filter_and_reconnect_sees_history(connect, sim: Simulator) -> None:
    client, _ = await connect(11)
    [aapl, msft] = await client.qualifyContractsAsync(AAPL, Stock("MSFT", "SMART", "USD"))
    for c, side in ((aapl, "BUY"), (msft, "BUY"), (aapl, "SELL")):
        tr = client.placeOrder(c, MarketOrder(side, 1))
        await eventually(lambda tr=tr: tr.isDone())
    fills = await client.reqExecutionsAsync(ExecutionFilter(symbol="AAPL"))
    assert len(fills) == 2
    sells = await client.reqExecutionsAsync(ExecutionFilter(side="SELL"))
    assert [f.contract.symbol for f in sells] == ["AAPL"]
    client.disconnect()
    # a new connection (another client id) sees positions and executions at connect
    other, _ = await connect(12)
    assert {p.contract.symbol: p.position for p in other.positions()} == {"MSFT": 1.0}
    assert len(other.fills()) == 3
    assert len(await other.reqCompletedOrdersAsync(False)) == 3


async def test_unknown_order_cancel(ib) -> None:
    client, errors = ib
    client.client.cancelOrder(999999)
    await errors.wait_for(10147)
