"""IB's pacing rules as the simulator enforces them (error 162 and error 100)."""

from __future__ import annotations

import asyncio

import pytest
from ib_async import RequestError, Stock

from ibhost.sim import Simulator
from ibhost.sim.pacing import HistoricalPacer, MessageRate
from ibhost.sim.protocol import FrameReader, frame, frame_raw

from .conftest import SIM_START, eventually

SYMBOLS = ["AAPL", "MSFT", "AMZN", "SPY", "QQQ", "TSLA", "NVDA", "GOOGL", "META", "IBM"]


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_pacer_rules_with_an_injected_clock() -> None:
    clock = FakeClock()
    p = HistoricalPacer(clock=clock)
    assert p.check("a", "c1") is None
    clock.t += 14.9
    assert p.check("a", "c1") == "identical"
    clock.t += 0.2
    assert p.check("a", "c1") is None  # 15 s later it is allowed again
    # five per contract per 2 s, the sixth is refused
    for i in range(4):
        assert p.check(("b", i), "c1") is None
    assert p.check(("b", 9), "c1") == "burst"
    assert p.check(("b", 8), "c2") is None  # another contract is fine
    clock.t += 2.0
    assert p.check(("b", 9), "c1") is None


def test_pacer_ten_minute_window_and_bid_ask_weight() -> None:
    clock = FakeClock()
    p = HistoricalPacer(clock=clock)
    for i in range(29):
        clock.t += 3
        assert p.check(i, i, weight=2) is None  # BID_ASK counts twice: 58 used
    assert p.check("y", "y", weight=1) is None  # 59
    assert p.check("x", "x", weight=2) == "ten_minute"  # 61 would be over 60
    assert p.check("z", "z", weight=1) is None  # 60: full after only 31 requests
    assert p.check("w", "w", weight=1) == "ten_minute"
    clock.t += 600
    assert p.check("w", "w", weight=1) is None


def test_message_rate() -> None:
    clock = FakeClock()
    r = MessageRate(clock=clock)
    assert all(r.hit() is None for _ in range(50))
    assert r.hit() == 51
    clock.t += 1.0
    assert r.hit() is None


@pytest.mark.pacing_violations_expected
async def test_sixty_one_requests_in_the_window_get_exactly_one_162(ib, sim: Simulator) -> None:
    client, errors = ib
    # scaled 0.01: the 10-minute window is 6 s, the 2 s burst window 20 ms.
    # 30-second bars: IB's hard rules are stated for bars of 30 seconds or less.
    results = []
    for i in range(61):
        contract = Stock(SYMBOLS[i % len(SYMBOLS)], "SMART", "USD")
        day = (10, 11, 12, 13, 14, 17, 18, 19, 20, 21)[i % 10]  # weekdays: all have data
        end = f"202511{day} {10 + (i // 10) % 6}:{(i // 60) * 5:02d}:00 US/Eastern"
        try:
            await client.reqHistoricalDataAsync(contract, end, "1800 S", "30 secs", "TRADES",
                                                True)
            results.append("ok")
        except RequestError as e:
            results.append(e.code)
    assert results.count(162) == 1
    assert results[-1] == 162
    assert sim.state()["stats"]["violations_by_rule"] == {"ten_minute": 1}


@pytest.fixture
async def strict():
    """A simulator with IB's real (unscaled) windows and a connected ib_async client."""
    from ib_async import IB

    async with Simulator("127.0.0.1", 0, start_time=SIM_START, pacing_scale=1.0) as sim:
        client = IB()
        client.RaiseRequestErrors = True
        await client.connectAsync("127.0.0.1", sim.port, clientId=1)
        try:
            yield sim, client
        finally:
            client.disconnect()


async def test_identical_requests_one_second_apart(strict) -> None:
    sim, client = strict
    c = Stock("AAPL", "SMART", "USD")
    args = ("20251121 16:00:00 US/Eastern", "1800 S", "30 secs", "TRADES", True)
    assert await client.reqHistoricalDataAsync(c, *args)
    await asyncio.sleep(1.0)
    with pytest.raises(RequestError) as ei:
        await client.reqHistoricalDataAsync(c, *args)
    assert ei.value.code == 162
    assert ei.value.message == ("Historical Market Data Service error message:"
                                "Historical data request pacing violation")
    assert sim.state()["stats"]["violations_by_rule"] == {"identical": 1}


async def test_six_requests_for_one_contract_within_two_seconds(strict) -> None:
    sim, client = strict
    c = Stock("AAPL", "SMART", "USD")
    codes = []
    for day in range(10, 16):
        try:
            await client.reqHistoricalDataAsync(
                c, f"202511{day} 16:00:00 US/Eastern", "1800 S", "30 secs", "MIDPOINT", True)
            codes.append(0)
        except RequestError as e:
            codes.append(e.code)
    assert codes == [0, 0, 0, 0, 0, 162]
    assert sim.state()["stats"]["violations_by_rule"] == {"burst": 1}


async def test_minute_bars_have_no_hard_limits(ib, sim: Simulator) -> None:
    """1-minute bars and larger: no identical/burst/10-minute violations (IB lifted
    them); the same request twice in a row and 40 at once are all answered (40: the
    library's own 45/s throttle bunches more than 50 messages into one second)."""
    client, _ = ib
    c = Stock("AAPL", "SMART", "USD")
    args = ("20251121 16:00:00 US/Eastern", "1 D", "1 min", "TRADES", True)
    first = await client.reqHistoricalDataAsync(c, *args)
    again = await client.reqHistoricalDataAsync(c, *args)
    assert len(first) == len(again) == 390
    ends = [f"202511{10 + i % 12:02d} {9 + i % 7:02d}:59:00 US/Eastern" for i in range(40)]
    got = await asyncio.gather(*(client.reqHistoricalDataAsync(
        Stock(SYMBOLS[i % 3], "SMART", "USD"), e, "1 D", "1 hour", "TRADES", True)
        for i, e in enumerate(ends)))
    assert all(got)
    assert sim.state()["stats"]["violations"] == []


def test_soft_throttle_token_bucket() -> None:
    from ibhost.sim.pacing import SoftThrottle

    clock = FakeClock()
    t = SoftThrottle(rate=5.0, burst=10.0, base=0.3, clock=clock)
    assert [t.admit(1) for _ in range(10)] == [0.0] * 10  # the burst starts at once
    waits = [t.admit(1) for _ in range(5)]
    assert waits == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])  # then 5 a second, in order
    assert t.admit(2) == 0.0  # per client
    clock.t += 10.0
    assert t.admit(1) == 0.0
    assert t.lower_bound(250) == pytest.approx(240 / 5 + 0.3)


async def test_strict_pacing_applies_hard_rules_to_every_bar_size() -> None:
    from ib_async import IB

    async with Simulator("127.0.0.1", 0, start_time=SIM_START, pacing="strict") as sim:
        client = IB()
        client.RaiseRequestErrors = True
        await client.connectAsync("127.0.0.1", sim.port, clientId=1)
        try:
            c = Stock("AAPL", "SMART", "USD")
            args = ("20251121 16:00:00 US/Eastern", "1 D", "1 hour", "TRADES", True)
            assert await client.reqHistoricalDataAsync(c, *args)
            with pytest.raises(RequestError) as ei:
                await client.reqHistoricalDataAsync(c, *args)
            assert ei.value.code == 162
            assert sim.state()["stats"]["violations_by_rule"] == {"identical": 1}
        finally:
            client.disconnect()


async def test_fifty_one_open_requests_is_322() -> None:
    """At most 50 simultaneous open historical requests; the 51st gets IB's 322."""
    from ib_async import IB

    async with Simulator("127.0.0.1", 0, start_time=SIM_START) as sim:  # unscaled: requests stay open
        client = IB()
        client.RaiseRequestErrors = True
        await client.connectAsync("127.0.0.1", sim.port, clientId=1)
        try:
            c = Stock("AAPL", "SMART", "USD")
            def req(i: int) -> asyncio.Future:
                return asyncio.ensure_future(client.reqHistoricalDataAsync(
                    c, f"2025{1 + i // 28:02d}{1 + i % 28:02d} 16:00:00 US/Eastern", "1 D",
                    "1 hour", "TRADES", True, timeout=0))

            # bursts of 20, well under the 50 messages/s rate even when two of them
            # arrive together (the simulator reads in this event loop, so under load its
            # arrival times bunch); the soft throttle (5 a second after a burst of 10)
            # keeps most of them open
            tasks: list[asyncio.Future] = []
            for batch in range(5):
                tasks += [req(i) for i in range(batch * 20, batch * 20 + 20)]
                await asyncio.sleep(1.1)
                assert sim.state()["clients"][0]["openHistorical"] <= 50
            refused = [t for t in tasks if t.done() and isinstance(t.exception(), RequestError)
                       and t.exception().code == 322]
            assert refused, "no request was refused beyond 50 open"
            assert "Only 50 simultaneous API historical data requests" in \
                refused[0].exception().message
            assert 40 <= sim.state()["clients"][0]["openHistorical"] <= 50
            for t in tasks:
                t.cancel()
            for i in range(1, 101):  # cancelHistoricalData closes them
                client.client.cancelHistoricalData(client.client._reqIdSeq - i)
                if i % 20 == 0:
                    await asyncio.sleep(1.1)  # under the message rate, bunched or not
            await eventually(lambda: sim.state()["clients"][0]["openHistorical"] == 0)
            assert sim.state()["stats"]["historical_cancelled"] >= 30
        finally:
            client.disconnect()


async def test_no_bars_after_now_and_bounded_durations(ib, sim: Simulator) -> None:
    client, errors = ib
    c = Stock("AAPL", "SMART", "USD")
    import datetime as dt

    sim.set_time(dt.datetime(2025, 11, 20, 17, 0, tzinfo=dt.UTC))  # 12:00 in New York
    bars = await client.reqHistoricalDataAsync(c, "20251120 16:00:00 US/Eastern", "1 D",
                                               "1 hour", "TRADES", True, formatDate=2)
    now = sim.now()
    assert bars and all(b.date.timestamp() < now for b in bars)
    assert bars[-1].date == dt.datetime(2025, 11, 20, 16, 0, tzinfo=dt.UTC)  # 11:00 bar
    with pytest.raises(RequestError) as ei:  # entirely in the future: no data
        await client.reqHistoricalDataAsync(c, "20300101 16:00:00 US/Eastern", "2 D",
                                            "1 hour", "TRADES", True)
    assert ei.value.code == 162 and "no data" in ei.value.message
    for dur in ("1000000 W", "99999999999999999999 D", "400 D", "0 D", "13 M"):
        # IB answers 321, which ib_async only logs: the request itself times out
        errors.items.clear()
        client.client.reqHistoricalData(client.client.getReqId(), c, "", dur, "1 day",
                                        "TRADES", 1, 1, False, [])
        _, _, text = await errors.wait_for(321)
        assert "duration format is invalid" in text, dur
    # and the connection is still up
    assert await client.reqHistoricalDataAsync(c, "", "5 D", "1 day", "TRADES", True)


async def _raw_client(sim: Simulator, client_id: int) -> tuple[asyncio.StreamReader,
                                                               asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(b"API\0" + frame_raw(["v157..178"]))
    writer.write(frame([71, 2, client_id, ""]))
    await writer.drain()
    return reader, writer


async def _read_until(reader: asyncio.StreamReader, pred, timeout: float = 3.0) -> list[str]:
    fr = FrameReader()
    async with asyncio.timeout(timeout):
        while True:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed")
            for msg in fr.feed(data):
                if pred(msg):
                    return msg


@pytest.mark.pacing_violations_expected
async def test_more_than_fifty_messages_a_second_is_error_100(sim: Simulator) -> None:
    reader, writer = await _raw_client(sim, 77)
    await _read_until(reader, lambda msg: msg[0] == "9")  # nextValidId: ready
    writer.write(b"".join(frame([49, 1]) for _ in range(60)))
    await writer.drain()
    msg = await _read_until(reader, lambda msg: msg[0] == "4" and msg[3] == "100")
    assert "Max rate of messages per second has been exceeded" in msg[4]
    # and the gateway hangs up on the client
    with pytest.raises(ConnectionError):
        await _read_until(reader, lambda msg: False)
    writer.close()
