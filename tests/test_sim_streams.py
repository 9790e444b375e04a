"""Live streams the way IB limits and sends them: market-data lines (101), real-time
bars, tick-by-tick (10190), farm outages, and a fill while the API connection is down.
Real ib_async clients over TCP; the simulator pinned by SIM_START and SEED."""

from __future__ import annotations

import asyncio
import datetime as dt
from itertools import pairwise

import pytest
from ib_async import IB, LimitOrder, Stock

from ibhost.sim import Simulator
from ibhost.sim.control import FAULTS_BY_NAME, coerce

from .conftest import SEED, SIM_START, eventually

SYMBOLS = ("AAPL", "MSFT", "AMZN", "SPY", "QQQ")


async def _contracts(client: IB, n: int) -> list[Stock]:
    return await client.qualifyContractsAsync(*[Stock(s, "SMART", "USD") for s in SYMBOLS[:n]])


def _jump(sim: Simulator, seconds: float) -> None:
    sim.set_time(sim.now_dt() + dt.timedelta(seconds=seconds))


def test_lines_are_a_constructor_argument() -> None:
    sim = Simulator("127.0.0.1", 0, seed=SEED, start_time=SIM_START, max_lines=300)
    md = sim.state()["market_data"]
    assert (md["lines_max"], md["lines_used"], md["tick_by_tick_max"]) == (300, 0, 3)
    assert Simulator("127.0.0.1", 0).max_lines == 100
    with pytest.raises(ValueError):
        Simulator("127.0.0.1", 0, max_lines=0)


async def test_line_limit_gives_101_and_no_data(sim: Simulator, connect) -> None:
    sim.max_lines = 3
    client, errors = await connect(1)
    other, other_errors = await connect(2)
    c = await _contracts(client, 4)
    t0 = client.reqMktData(c[0])
    client.reqMktData(c[1])
    other.reqMktData(c[2])  # lines are the user's: every client shares them
    await eventually(lambda: sim.state()["market_data"]["lines_used"] == 3)
    assert sim.state()["stats"]["errors_sent"].get("101") is None
    over = client.reqMktData(c[3])
    req_id, _, text = await errors.wait_for(101)
    assert text == "Max number of tickers has been reached"
    await eventually(lambda: t0.last > 0)
    await asyncio.sleep(0.2)
    assert over.last != over.last or not over.last  # nothing for the refused request
    st = sim.state()
    assert st["stats"]["errors_sent"]["101"] == 1
    assert st["market_data"]["by_contract"] == {
        str(c[0].conId): {"mkt": 1}, str(c[1].conId): {"mkt": 1}, str(c[2].conId): {"mkt": 1}}
    me = next(x for x in st["clients"] if x["clientId"] == 1)
    assert me["marketDataLines"] == 2
    assert [(x["symbol"], x["kind"]) for x in me["live"]] == [("AAPL", "mkt"), ("MSFT", "mkt")]
    # a cancel frees the line
    client.cancelMktData(c[1])
    await eventually(lambda: sim.state()["market_data"]["lines_used"] == 2)
    again = client.reqMktData(c[3])
    await eventually(lambda: again.last > 0)
    assert sim.state()["stats"]["errors_sent"]["101"] == 1
    assert 101 not in other_errors.codes()


async def test_tick_by_tick_types_and_limit(sim: Simulator, ib) -> None:
    client, errors = ib
    c = await _contracts(client, 4)
    kinds = ("BidAsk", "MidPoint", "Last")
    tickers = [client.reqTickByTickData(con, k) for con, k in zip(c, kinds, strict=False)]
    for t in tickers:
        await eventually(lambda t=t: len(t.tickByTicks) > 0)
    bid_ask, mid, last = (t.tickByTicks[0] for t in tickers)
    assert 0 < bid_ask.bidPrice < bid_ask.askPrice and bid_ask.bidSize > 0
    assert mid.midPoint > 0 and last.price > 0 and last.size > 0
    q = sim.market.quote(sim.universe.by_conid(c[1].conId), sim.now())
    assert mid.midPoint == pytest.approx((q.bid + q.ask) / 2, rel=0.01)
    # 100 lines allow three tick-by-tick subscriptions (the market-depth formula)
    client.reqTickByTickData(c[3], "AllLast")
    _, _, text = await errors.wait_for(10190)
    assert text == "Max number of tick-by-tick requests has been reached."
    md = sim.state()["market_data"]
    assert (md["tick_by_tick_used"], md["lines_used"]) == (3, 3)  # they take lines too
    client.cancelTickByTickData(c[0], "BidAsk")
    await eventually(lambda: sim.state()["market_data"]["tick_by_tick_used"] == 2)
    fourth = client.reqTickByTickData(c[3], "AllLast")
    await eventually(lambda: len(fourth.tickByTicks) > 0)
    assert sim.state()["stats"]["errors_sent"]["10190"] == 1


async def test_tick_by_tick_counts_against_lines(sim: Simulator, ib) -> None:
    client, errors = ib
    sim.max_lines = 2
    c = await _contracts(client, 3)
    client.reqMktData(c[0])
    client.reqTickByTickData(c[1], "Last")
    await eventually(lambda: sim.state()["market_data"]["lines_used"] == 2)
    client.reqTickByTickData(c[2], "Last")
    await errors.wait_for(101)


async def test_real_time_bars(sim: Simulator, ib) -> None:
    client, _ = ib
    [aapl] = await _contracts(client, 1)
    mid = client.reqRealTimeBars(aapl, 5, "MIDPOINT", False)
    trades = client.reqRealTimeBars(aapl, 5, "TRADES", False)
    await eventually(lambda: sim.state()["market_data"]["lines_used"] == 2)
    _jump(sim, 16)  # three bars close at once
    await eventually(lambda: len(mid) >= 3 and len(trades) >= 3)
    starts = [int(b.time.timestamp()) for b in mid]
    assert all(t % 5 == 0 for t in starts)
    assert [b - a for a, b in pairwise(starts)] == [5] * (len(starts) - 1)
    lst = sim.universe.by_conid(aapl.conId)
    for b in mid:  # the quote's path: a bar closes at the last second's price
        assert b.low <= b.open_ <= b.high and b.low <= b.close <= b.high
        assert b.close == pytest.approx(sim.market.quote(lst, b.time.timestamp() + 4).last)
        assert (b.volume, b.wap, b.count) == (-1, -1, -1)
    assert all(b.volume > 0 and b.count > 0 for b in trades)
    client.cancelRealTimeBars(mid)
    await eventually(lambda: sim.state()["market_data"]["lines_used"] == 1)
    n = len(mid)
    _jump(sim, 10)
    await eventually(lambda: len(trades) >= 5)
    assert len(mid) == n


@pytest.mark.pacing_violations_expected
async def test_real_time_bars_are_paced_like_small_bars(sim: Simulator, ib) -> None:
    client, errors = ib
    [aapl] = await _contracts(client, 1)
    bars = client.reqRealTimeBars(aapl, 5, "BID", True)
    client.cancelRealTimeBars(bars)
    client.reqRealTimeBars(aapl, 5, "BID", True)  # identical within 15 s
    _, _, text = await errors.wait_for(420)
    assert "pacing violation" in text
    assert sim.state()["stats"]["violations_by_rule"] == {"identical": 1}


async def test_farm_outage_stops_quotes_and_bars(sim: Simulator, ib) -> None:
    client, errors = ib
    [aapl] = await _contracts(client, 1)
    ticker = client.reqMktData(aapl)
    bars = client.reqRealTimeBars(aapl, 5, "MIDPOINT", False)
    await eventually(lambda: ticker.time is not None)
    sim.farm_broken(2103, after=None)
    await errors.wait_for(2103)
    await asyncio.sleep(0.1)
    stamp, n = ticker.time, len(bars)
    _jump(sim, 12)
    await asyncio.sleep(0.3)
    assert (ticker.time, len(bars)) == (stamp, n)
    resumed_from = int(sim.now()) // 5 * 5
    sim.farm_ok(2103)
    await errors.wait_for(2104)
    await eventually(lambda: ticker.time != stamp)
    _jump(sim, 6)
    await eventually(lambda: len(bars) > n)
    # bars that closed during the outage are never sent
    assert int(bars[n].time.timestamp()) >= resumed_from


async def test_fill_while_down_is_seen_once_after_reconnect(sim: Simulator, connect) -> None:
    client, _ = await connect(3)
    [aapl] = await _contracts(client, 1)
    trade = client.placeOrder(aapl, LimitOrder("BUY", 10, 1.0))
    await eventually(lambda: trade.orderStatus.status == "Submitted")
    gone = asyncio.Event()
    client.disconnectedEvent += lambda: gone.set()
    assert await sim.fill_while_down(order_id=trade.order.orderId) == 1
    await asyncio.wait_for(gone.wait(), 3)
    assert trade.orderStatus.status == "Submitted"  # the client never heard
    for _ in range(2):  # every reconnect sees the same one fill
        fresh, _ = await connect(3)
        assert await fresh.reqOpenOrdersAsync() == []
        done = await fresh.reqCompletedOrdersAsync(apiOnly=False)
        # completedOrder carries no order id, as at IB: the permId ties it
        assert [(t.order.permId, t.orderStatus.status) for t in done] == \
            [(trade.order.permId, "Filled")]
        [fill] = fresh.fills()
        assert (fill.execution.orderId, fill.execution.shares, fill.execution.price) == \
            (trade.order.orderId, 10, 1.0)  # the market came through the limit
        assert fill.commissionReport.commission > 0
        assert [(p.contract.conId, p.position) for p in fresh.positions()] == \
            [(aapl.conId, 10)]
        fresh.disconnect()
    assert len(sim.state()["executions"]) == 1


async def test_fill_while_down_control_parameters(sim: Simulator) -> None:
    fault = FAULTS_BY_NAME["fill-while-down"]
    assert coerce(fault, {}) == {"order_id": None, "client_id": None, "downtime": 0.0}
    with pytest.raises(ValueError):  # nothing open to fill
        await fault.apply(sim, coerce(fault, {"order_id": 7}))


def test_market_data_lines_flag() -> None:
    import argparse

    from ibhost.sim.main import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    assert parser.parse_args(["sim"]).market_data_lines == 100
    assert parser.parse_args(["sim", "--market-data-lines", "300"]).market_data_lines == 300
