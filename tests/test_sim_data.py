"""The simulator's data requests through unmodified ib_async over real TCP."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ib_async import Contract, Forex, Future, Option, RequestError, Stock

from ibhost.sim import Simulator

from .conftest import SIM_START

ET = ZoneInfo("US/Eastern")


async def test_connect_completes_sync(ib, sim: Simulator) -> None:
    client, errors = ib
    assert client.isConnected()
    assert client.client.serverVersion() == 178
    assert client.managedAccounts() == ["DU1234567"]
    # ib_async's connect sync reached the simulator and was answered
    reqs = sim.state()["stats"]["requests"]
    for name in ("reqPositions", "reqOpenOrders", "reqCompletedOrders", "reqAccountUpdates",
                 "reqAccountUpdatesMulti", "reqExecutions"):
        assert reqs.get(name) == 1, name
    # farm notices arrive as errors with reqId -1
    await errors.wait_for(2158)
    assert {2104, 2106, 2158} <= set(errors.codes())
    values = {v.tag: v.value for v in client.accountValues()}
    assert float(values["NetLiquidation"]) == pytest.approx(1_000_000.0)


async def test_current_time(ib, sim: Simulator) -> None:
    """The simulated clock, not this machine's: it started at SIM_START."""
    t = await ib[0].reqCurrentTimeAsync()
    assert SIM_START <= t <= SIM_START + dt.timedelta(seconds=60)
    assert abs(t.timestamp() - sim.now()) < 2


async def test_stock_contract_details(ib) -> None:
    cds = await ib[0].reqContractDetailsAsync(Stock("AAPL", "SMART", "USD"))
    assert len(cds) == 1
    cd = cds[0]
    assert cd.contract.conId == 265598
    assert cd.contract.primaryExchange == "NASDAQ"
    assert cd.timeZoneId == "US/Eastern"
    assert cd.minTick == 0.01
    assert cd.longName == "APPLE INC"
    # seven days of hours; weekends closed, weekdays 09:30-16:00 regular
    days = cd.liquidHours.split(";")
    assert len(days) == 7
    for part in days:
        day = dt.datetime.strptime(part[:8], "%Y%m%d").date()
        if day.weekday() >= 5:
            assert part.endswith("CLOSED")
    assert any("0930-" in p and p.endswith("1600") for p in days)
    assert any(":0400-" in p for p in cd.tradingHours.split(";"))


async def test_forex_future_and_option_details(ib) -> None:
    client = ib[0]
    fx = await client.reqContractDetailsAsync(Forex("EURUSD"))
    assert fx[0].contract.localSymbol == "EUR.USD"
    assert fx[0].contract.exchange == "IDEALPRO"
    futs = await client.reqContractDetailsAsync(Future("ES", exchange="CME"))
    assert len(futs) == 4  # next four quarterlies
    assert all(f.contract.multiplier == "50" for f in futs)
    expiries = sorted(f.contract.lastTradeDateOrContractMonth for f in futs)
    assert expiries == [f.contract.lastTradeDateOrContractMonth for f in
                        sorted(futs, key=lambda f: f.contract.lastTradeDateOrContractMonth)]
    chains = await client.reqSecDefOptParamsAsync("AMZN", "", "STK", 3691937)
    smart = next(c for c in chains if c.exchange == "SMART")
    exp, strike = smart.expirations[0], smart.strikes[20]
    opts = await client.reqContractDetailsAsync(
        Option("AMZN", exp, strike, "C", "SMART", currency="USD"))
    assert len(opts) == 1
    o = opts[0].contract
    assert (o.right, o.strike, o.multiplier, o.lastTradeDateOrContractMonth) == \
        ("C", strike, "100", exp)
    # a partial option spec returns the whole expiry, like IB
    many = await client.reqContractDetailsAsync(Option("AAPL", exp, exchange="SMART"))
    assert len(many) == 2 * len(smart.strikes)


async def test_unknown_contract_is_error_200(ib) -> None:
    client, errors = ib
    with pytest.raises(RequestError) as ei:
        await client.reqContractDetailsAsync(Stock("NOSUCH", "SMART", "USD"))
    assert ei.value.code == 200


async def test_ambiguous_contract(ib) -> None:
    client, errors = ib
    both = await client.reqContractDetailsAsync(Stock("SHOP", "SMART"))
    assert sorted(c.contract.currency for c in both) == ["CAD", "USD"]
    with pytest.raises(RequestError) as ei:
        await client.reqHistoricalDataAsync(Stock("SHOP", "SMART"), "", "1 D", "1 hour",
                                            "TRADES", True)
    assert ei.value.code == 200
    assert "ambiguous" in ei.value.message


async def test_head_timestamp(ib) -> None:
    client = ib[0]
    head = await client.reqHeadTimeStampAsync(Stock("AAPL", "SMART", "USD"), "TRADES", True, 1)
    assert head == dt.datetime(1980, 12, 12, 14, 30)
    epoch = await client.reqHeadTimeStampAsync(Stock("MSFT", "SMART", "USD"), "TRADES", True, 2)
    assert epoch.year == 1986


AAPL = Stock("AAPL", "SMART", "USD", conId=265598)
# Friday 2025-11-28 is the NYSE half day after Thanksgiving (Thursday 27th closed).
THANKSGIVING_WEEK_END = "20251128 23:00:00 US/Eastern"


async def test_intraday_bars_follow_the_calendar(ib) -> None:
    client = ib[0]
    bars = await client.reqHistoricalDataAsync(
        AAPL, THANKSGIVING_WEEK_END, "1 W", "30 mins", "TRADES", True)
    days = sorted({b.date.date() for b in bars})
    # Mon 24, Tue 25, Wed 26, (Thu 27 holiday), Fri 28 half day; no weekend
    assert days == [dt.date(2025, 11, d) for d in (24, 25, 26, 28)]
    friday = [b for b in bars if b.date.day == 28]
    assert friday[0].date.time() == dt.time(9, 30)
    assert friday[-1].date.time() == dt.time(12, 30)  # closes 13:00
    monday = [b for b in bars if b.date.day == 24]
    assert len(monday) == 13  # 09:30..15:30
    ext = await client.reqHistoricalDataAsync(
        AAPL, THANKSGIVING_WEEK_END, "1 W", "30 mins", "TRADES", False)
    ext_monday = [b for b in ext if b.date.day == 24]
    assert ext_monday[0].date.time() == dt.time(4, 0)
    assert ext_monday[-1].date.time() == dt.time(19, 30)
    for b in bars + ext:
        assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        assert b.volume >= 0


@pytest.mark.parametrize("what", ["TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"])
async def test_what_to_show(ib, what: str) -> None:
    bars = await ib[0].reqHistoricalDataAsync(AAPL, "20251121 16:00:00 US/Eastern", "1 D",
                                             "5 mins", what, True)
    assert len(bars) == 78
    for b in bars:
        assert b.low <= min(b.open, b.close) and max(b.open, b.close) <= b.high
        assert (b.volume > 0) == (what == "TRADES")


async def test_bid_below_ask(ib) -> None:
    end = "20251121 16:00:00 US/Eastern"
    bid = await ib[0].reqHistoricalDataAsync(AAPL, end, "1 D", "1 hour", "BID", True)
    ask = await ib[0].reqHistoricalDataAsync(AAPL, end, "1 D", "1 hour", "ASK", True)
    assert all(b.close < a.close for b, a in zip(bid, ask, strict=True))


@pytest.mark.parametrize(
    ("duration", "bar", "expected"),
    [
        ("1800 S", "1 secs", {1800}),
        ("3600 S", "1 min", {60}),
        ("1 D", "1 hour", {6}),  # 09:30, 10:00 .. 14:00 (the 15:00 bar starts at the end)
        ("2 W", "1 day", {10}),
        ("1 M", "1 day", {23}),  # Oct 22 .. Nov 21, 2025
        ("1 Y", "1 week", {52, 53}),
        ("1 Y", "1 month", {12, 13}),
    ],
)
async def test_durations_and_bar_sizes(ib, duration: str, bar: str, expected: set[int]) -> None:
    end = "20251121 15:00:00 US/Eastern"  # a Friday
    bars = await ib[0].reqHistoricalDataAsync(AAPL, end, duration, bar, "TRADES", True)
    assert len(bars) in expected, (duration, bar, len(bars))


async def test_daily_bar_dates_are_dates_and_epoch_format(ib) -> None:
    client = ib[0]
    daily = await client.reqHistoricalDataAsync(AAPL, "20251121 23:00:00 US/Eastern", "5 D",
                                                "1 day", "TRADES", True)
    assert [b.date for b in daily] == [dt.date(2025, 11, d) for d in (17, 18, 19, 20, 21)]
    epoch = await client.reqHistoricalDataAsync(AAPL, "20251121 10:00:00 US/Eastern", "1800 S",
                                                "5 mins", "TRADES", True, formatDate=2)
    assert epoch[0].date == dt.datetime(2025, 11, 21, 14, 30, tzinfo=dt.UTC)


async def test_empty_end_means_now(ib) -> None:
    bars = await ib[0].reqHistoricalDataAsync(AAPL, "", "5 D", "1 day", "TRADES", True)
    assert bars and bars[-1].date <= dt.datetime.now(ET).date()


async def test_bars_are_deterministic_and_chunkable(sim: Simulator, connect) -> None:
    client, _ = await connect(1)
    end = "20251121 16:00:00 US/Eastern"
    one = await client.reqHistoricalDataAsync(AAPL, end, "2 D", "5 mins", "TRADES", True)
    two = await client.reqHistoricalDataAsync(AAPL, "20251120 16:00:00 US/Eastern", "1 D",
                                              "5 mins", "TRADES", True)
    three = await client.reqHistoricalDataAsync(AAPL, end, "1 D", "5 mins", "TRADES", True)
    assert list(one) == list(two) + list(three)
    # a different seed is a different market
    other = Simulator("127.0.0.1", 0, start_time=SIM_START, seed=8)
    await other.start()
    try:
        from ib_async import IB

        ib2 = IB()
        await ib2.connectAsync("127.0.0.1", other.port, clientId=1)
        diff = await ib2.reqHistoricalDataAsync(AAPL, end, "1 D", "5 mins", "TRADES", True)
        ib2.disconnect()
    finally:
        await other.stop()
    assert [b.close for b in diff] != [b.close for b in three]


async def test_invalid_combinations(ib) -> None:
    client, errors = ib
    # ib_async only logs 321 (a "warning" to it), so the request runs into its timeout
    bars = await client.reqHistoricalDataAsync(AAPL, "", "1 D", "1 sec", "TRADES", True,
                                               timeout=1)
    assert list(bars) == []
    _, code, text = await errors.wait_for(321)
    assert "Legal ones are" in text
    with pytest.raises(RequestError) as ei:
        await client.reqHistoricalDataAsync(AAPL, "", "1 D", "1 secs", "TRADES", True)
    assert ei.value.code == 162 and "Time length exceed max" in ei.value.message
    with pytest.raises(RequestError) as ei:
        await client.reqHistoricalDataAsync(AAPL, "", "60 S", "1 day", "TRADES", True)
    assert ei.value.code == 162 and "invalid step" in ei.value.message
    errors.items.clear()
    await client.reqHistoricalDataAsync(AAPL, "", "3 X", "1 day", "TRADES", True, timeout=1)
    _, _, text = await errors.wait_for(321)
    assert "duration" in text
    with pytest.raises(RequestError) as ei:
        await client.reqHistoricalDataAsync(Forex("EURUSD"), "", "1 D", "1 hour", "TRADES", True)
    assert ei.value.code == 162


async def test_forex_and_future_bars(ib) -> None:
    client = ib[0]
    fx = await client.reqHistoricalDataAsync(Forex("EURUSD"), "20251121 12:00:00 US/Eastern",
                                             "1 D", "1 hour", "MIDPOINT", False)
    assert 15 <= len(fx) <= 20
    assert all(0.5 < b.close < 2.0 for b in fx)
    futs = await client.reqContractDetailsAsync(Future("ES", exchange="CME"))
    es = futs[0].contract
    bars = await client.reqHistoricalDataAsync(es, "", "2 D", "1 hour", "TRADES", False)
    assert bars and all(1000 < b.close < 20000 for b in bars)


async def test_missing_ranges_make_gaps(sim: Simulator, ib) -> None:
    a = dt.datetime(2025, 11, 20, 15, 0, tzinfo=dt.UTC)  # 10:00 ET
    b = dt.datetime(2025, 11, 20, 16, 0, tzinfo=dt.UTC)
    sim.set_missing("MSFT", [(a, b)])
    bars = await ib[0].reqHistoricalDataAsync(Stock("MSFT", "SMART", "USD"),
                                             "20251120 16:00:00 US/Eastern", "1 D", "1 min",
                                             "TRADES", True)
    times = {x.date.astimezone(dt.UTC) for x in bars}
    assert len(bars) == 390 - 60
    assert a not in times and b in times and a - dt.timedelta(minutes=1) in times


async def test_head_timestamp_limits_bars(ib) -> None:
    client = ib[0]
    with pytest.raises(RequestError) as ei:
        await client.reqHistoricalDataAsync(Stock("META", "SMART", "USD"),
                                            "20100101 12:00:00 US/Eastern", "1 M", "1 day",
                                            "TRADES", True)
    assert ei.value.code == 162 and "returned no data" in ei.value.message


async def test_contract_by_conid(ib) -> None:
    cds = await ib[0].reqContractDetailsAsync(Contract(conId=756733))
    assert cds[0].contract.symbol == "SPY"


async def test_keep_up_to_date_streams_bar_updates(sim: Simulator, ib) -> None:
    client, errors = ib
    sim.set_time(dt.datetime(2025, 11, 20, 15, 0, tzinfo=dt.UTC))  # Thursday 10:00 ET
    sim.bar_update_interval = 0.2
    bars = await client.reqHistoricalDataAsync(AAPL, "", "1800 S", "1 min", "MIDPOINT", False,
                                               keepUpToDate=True)
    assert bars
    updates: list[object] = []
    bars.updateEvent += lambda b, has_new: updates.append(has_new)
    from .conftest import eventually

    await eventually(lambda: updates, timeout=8)
    assert bars[-1].date.astimezone(dt.UTC) >= dt.datetime(2025, 11, 20, 14, 59, tzinfo=dt.UTC)
    client.cancelHistoricalData(bars)
    # an end date with keepUpToDate is refused, as at IB
    await client.reqHistoricalDataAsync(AAPL, "20251121 16:00:00 US/Eastern", "1800 S",
                                        "1 min", "MIDPOINT", False, keepUpToDate=True,
                                        timeout=1)
    _, _, text = await errors.wait_for(321)
    assert "live updates" in text


async def test_simulated_clock(sim: Simulator, ib) -> None:
    client, _ = ib
    sim.set_time(dt.datetime(2025, 11, 20, 15, 0, tzinfo=dt.UTC))
    t = await client.reqCurrentTimeAsync()
    assert abs((t - dt.datetime(2025, 11, 20, 15, 0, tzinfo=dt.UTC)).total_seconds()) < 5
    bars = await client.reqHistoricalDataAsync(AAPL, "", "1800 S", "1 min", "TRADES", True)
    assert len(bars) == 30  # 09:30 .. 09:59 ET


async def test_the_bar_in_progress_holds_only_what_happened_before_now(sim: Simulator,
                                                                      ib) -> None:
    """IB's last bar of an answer ending now is the one still forming: its volume grows
    as the minute goes on, and it never shows a price from after now."""
    client, _ = ib
    sim.set_time(dt.datetime(2025, 11, 20, 15, 0, 10, tzinfo=dt.UTC))  # 10:00:10 ET

    async def last_bar() -> Any:
        bars = await client.reqHistoricalDataAsync(AAPL, "", "600 S", "1 min", "TRADES",
                                                   True, formatDate=2)
        return bars[-1]

    first = await last_bar()
    await asyncio.sleep(2.5)
    second = await last_bar()
    assert first.date == second.date == dt.datetime(2025, 11, 20, 15, 0, tzinfo=dt.UTC)
    assert 0 < first.volume < second.volume
    # the whole minute, as the next minute's answer has it, holds more than either
    aapl = sim.universe.by_conid(265598)
    assert aapl is not None
    minute = int(first.date.timestamp())
    whole = sim.market.bars(aapl, minute, minute + 60, 60, "TRADES", True)[0]
    assert whole.volume > second.volume
