"""IB's pacing rules as the simulator enforces them (error 162 and error 100)."""

from __future__ import annotations

import asyncio

import pytest
from ib_async import RequestError, Stock

from ibhost.sim import Simulator
from ibhost.sim.pacing import HistoricalPacer, MessageRate
from ibhost.sim.protocol import FrameReader, frame, frame_raw

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


async def test_sixty_one_requests_in_the_window_get_exactly_one_162(ib, sim: Simulator) -> None:
    client, errors = ib
    # scaled 0.01: the 10-minute window is 6 s, the 2 s burst window 20 ms
    results = []
    for i in range(61):
        contract = Stock(SYMBOLS[i % len(SYMBOLS)], "SMART", "USD")
        end = f"202511{10 + i // 10:02d} 16:00:00 US/Eastern"
        try:
            await client.reqHistoricalDataAsync(contract, end, "1 D", "1 hour", "TRADES", True)
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

    async with Simulator("127.0.0.1", 0, pacing_scale=1.0) as sim:
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
    args = ("20251121 16:00:00 US/Eastern", "1 D", "5 mins", "TRADES", True)
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
                c, f"202511{day} 16:00:00 US/Eastern", "1 D", "1 hour", "MIDPOINT", True)
            codes.append(0)
        except RequestError as e:
            codes.append(e.code)
    assert codes == [0, 0, 0, 0, 0, 162]
    assert sim.state()["stats"]["violations_by_rule"] == {"burst": 1}


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
