"""The connector's request API over connector.sock against the simulator."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from ibhost.errors import IbhostError
from ibhost.sim import Simulator

from .conftest import SIM_START
from .connector_fixtures import running_connector, wait_until

UTC = dt.UTC


async def expect_error(coro, code: str, field: str | None = None) -> IbhostError:
    try:
        await coro
    except IbhostError as e:
        assert e.code == code, (e.code, e.message)
        if field is not None:
            assert e.field == field, (e.field, e.message)
        return e
    raise AssertionError(f"expected {code}")


async def test_thirty_days_of_one_minute_bars_chunked_equal_ground_truth(
        sim: Simulator, tmp_path: Path) -> None:
    start = dt.datetime(2025, 10, 22, tzinfo=UTC)
    end = dt.datetime(2025, 11, 21, tzinfo=UTC)
    async with running_connector(tmp_path, sim) as (con, client):
        r = await client.request("POST", "/historical", json_body={
            "symbol": "AAPL", "barSize": "1 min", "start": start.isoformat(),
            "end": end.isoformat(), "useRTH": False})
    assert r["requests"] == 30  # one 86400 S request per day
    lst = sim.universe.match(__import__("ibhost.sim.universe", fromlist=["Query"]).Query(
        symbol="AAPL", secType="STK", currency="USD"))[0]
    truth = sim.market.bars(lst, int(start.timestamp()), int(end.timestamp()), 60,
                            "TRADES", False)
    assert len(r["bars"]) == len(truth) > 20 * 900
    for got, want in zip(r["bars"], truth, strict=True):
        assert dt.datetime.fromisoformat(got["timestamp"]).timestamp() == want.start
        assert (got["open"], got["high"], got["low"], got["close"], got["volume"]) == \
            (want.open, want.high, want.low, want.close, want.volume)
    assert sim.state()["stats"]["violations"] == []


async def test_daily_bars_over_years_and_duration_form(sim: Simulator, tmp_path: Path) -> None:
    async with running_connector(tmp_path, sim) as (con, client):
        r = await client.request("POST", "/historical", json_body={
            "symbol": "MSFT", "barSize": "1 day", "start": "2022-01-01",
            "end": "2025-01-01", "whatToShow": "MIDPOINT"})
        days = [b["timestamp"][:10] for b in r["bars"]]
        assert days[0] == "2022-01-03" and days[-1] == "2024-12-31"
        assert len(days) == len(set(days)) == 753  # NYSE sessions 2022-2024
        d = await client.request("POST", "/historical", json_body={
            "symbol": "MSFT", "barSize": "1 hour", "duration": "2 D",
            "end": "2025-11-21T21:00:00Z"})
        assert d["requests"] == 1 and len(d["bars"]) == 14


async def test_no_ib_request_for_bars_after_now(sim: Simulator, tmp_path: Path) -> None:
    """A range that lies in the future is empty without asking IB; one that reaches into
    it is asked only up to now (IB has no bars after now). "Now" is IB's clock (the
    simulator's, pinned whatever this machine's date), learned from its currentTime."""
    now = sim.now_dt()
    async with running_connector(tmp_path, sim) as (con, client):
        assert abs(con.session.clock.now() - sim.now()) < 2
        before = sim.state()["stats"]["requests"].get("reqHistoricalData", 0)
        r = await client.request("POST", "/historical", json_body={
            "symbol": "AAPL", "barSize": "1 min", "start": (now + dt.timedelta(days=3650))
            .isoformat(), "end": (now + dt.timedelta(days=7300)).isoformat()})
        assert r["requests"] == 0 and r["bars"] == []
        r = await client.request("POST", "/historical", json_body={
            "symbol": "AAPL", "barSize": "1 day", "useRTH": False,
            "start": (now - dt.timedelta(days=30)).isoformat(),
            "end": (now + dt.timedelta(days=3650)).isoformat()})
        assert r["requests"] == 1 and len(r["bars"]) > 15  # one year chunk, up to now
        after = sim.state()["stats"]["requests"].get("reqHistoricalData", 0)
        assert after - before == 1


SYMBOLS = ["AAPL", "MSFT", "AMZN", "SPY", "QQQ", "TSLA", "NVDA", "GOOGL", "META", "IBM"]


async def test_message_rate_at_100_clients_is_near_ibs_limit_without_violation(
        sim: Simulator, tmp_path: Path) -> None:
    """IB allows 50 messages in any second: the scheduler counts messages (a one-off
    tick subscription and a head timestamp are two each: the request and its cancel):
    100 callers pressing for 6 s never earn a violation or an error 100."""
    # the production heartbeat: the suite's fast one (1 s to answer) can take a
    # loaded machine's pause, with 100 callers and the simulator on one event loop,
    # for a half-open socket; this test is about the message rate. Its head timestamps
    # also meet the 60-per-10-minutes rule, here 60 per 6 s (scale 0.01): the delay
    # between sending and the simulator's reading, all on one event loop with 100
    # callers, is not scaled, and a loaded machine's can pass the 0.2 s margin meant
    # for 600 s; a second keeps the rule's edge out of this test
    async with running_connector(tmp_path, sim, ib__heartbeat_interval=5.0,
                                 ib__heartbeat_timeout=5.0,
                                 pacing__margin=1.0) as (con, client):
        stop = time.monotonic() + 5.0
        done = 0

        async def caller(n: int) -> None:
            nonlocal done
            while time.monotonic() < stop:
                if n % 4 == 0:  # reqMktData + cancelMktData
                    await client.request("POST", "/snapshot", json_body={
                        "symbol": "AAPL", "genericTicks": [100]})
                elif n % 8 == 1:  # reqHeadTimeStamp + cancelHeadTimeStamp
                    await client.request("GET", "/head-timestamp", params={
                        "symbol": SYMBOLS[(n + done) % len(SYMBOLS)], "whatToShow":
                        ("TRADES", "MIDPOINT", "BID", "ASK")[done % 4]})
                else:  # maxAge=0: asked of IB, not answered from the contract cache
                    await client.request("POST", "/validate", json_body={"symbol": "MSFT"},
                                         params={"maxAge": "0"})
                done += 1

        def sent() -> int:
            return sum(sim.state()["stats"]["requests"].values())

        async def steady_rate() -> float:  # messages a second once all are waiting
            await asyncio.sleep(1.0)
            before, t0 = sent(), time.monotonic()
            await asyncio.sleep(4.0)  # the rate swings from one
            return (sent() - before) / (time.monotonic() - t0)  # second to the next

        await asyncio.sleep(1.2)  # the connect sync's messages leave the window
        stop = time.monotonic() + 6.0
        try:
            rate, *_ = await asyncio.gather(steady_rate(),
                                            *(caller(n) for n in range(100)))
        except IbhostError as e:  # say why the connection went, not only that it did
            d = con.session.diag
            raise AssertionError(
                f"{e}; lastDisconnectReason={d.lastDisconnectReason!r} "
                f"lastIbErrorCode={d.lastIbErrorCode} lastIbErrorMessage="
                f"{d.lastIbErrorMessage!r} violations={sim.state()['stats']['violations']}"
            ) from e
    assert sim.state()["stats"]["violations"] == []
    assert "100" not in sim.state()["stats"]["errors_sent"]
    # IB judges on arrival: never more than 50 in a second, whatever the load
    assert rate <= 50, rate
    # How close to pacing.messages_per_second per 1.05 s the scheduler keeps the flow is a matter of its
    # clock, checked with a stepped one (test_connector_process.py), and of this
    # machine's speed, which `ibhost bench` reports (39.3/s on an idle machine).


async def test_head_timestamp_before_1970(sim: Simulator, tmp_path: Path) -> None:
    """IBM's data starts in 1962: a negative epoch the client library cannot parse."""
    async with running_connector(tmp_path, sim) as (con, client):
        h = await client.request("GET", "/head-timestamp", params={"symbol": "IBM"})
    assert h["headTimestamp"].startswith("1962-01-02"), h


async def test_identical_requests_are_cached_and_coalesced(sim: Simulator,
                                                           tmp_path: Path) -> None:
    body = {"symbol": "SPY", "barSize": "5 mins", "duration": "1 D",
            "end": "2025-11-20T21:00:00Z"}
    async with running_connector(tmp_path, sim, pacing__scale=1.0) as (con, client):
        results = await asyncio.gather(*(client.request("POST", "/historical", json_body=body)
                                        for _ in range(5)))
        again = await client.request("POST", "/historical", json_body=body)
        assert all(r["bars"] == again["bars"] for r in results)
        assert sim.state()["stats"]["requests"]["reqHistoricalData"] == 1
        st = (await client.request("GET", "/status"))["pacing"]
        assert st["coalesced"] == 4 and st["cacheHits"] == 1
    assert sim.state()["stats"]["violations"] == []


async def test_two_hundred_requests_no_violation_near_the_lower_bound(
        tmp_path: Path) -> None:
    scale = 0.01  # the 10-minute window is 6 s; 200 requests need 3 full windows
    symbols = ["AAPL", "MSFT", "AMZN", "SPY", "QQQ", "TSLA", "NVDA", "GOOGL", "META", "IBM"]
    async with Simulator("127.0.0.1", 0, start_time=SIM_START, pacing_scale=scale) as sim:
        async with running_connector(tmp_path, sim, pacing__margin=0.25) as (con, client):
            # 20 instruments: 10 symbols x 2 kinds of data
            # 30-second bars: IB's hard rules are stated for bars of 30 s or less.
            # margin 0.25 s (the default is 0.2): the simulator judges on arrival, and a
            # loaded test machine delays some sends and reads more than others
            days = (10, 11, 12, 13, 14, 17, 18, 19, 20, 21)
            bodies = [{"symbol": symbols[i % 10], "barSize": "30 secs", "duration": "1800 S",
                       "whatToShow": "TRADES" if i % 20 < 10 else "MIDPOINT",
                       "end": f"2025-11-{days[(i // 20) % 10]:02d}T20:00:00Z"}
                      for i in range(200)]
            t0 = time.monotonic()
            results = await asyncio.gather(*(client.request("POST", "/historical",
                                                            json_body=b) for b in bodies))
            elapsed = time.monotonic() - t0
            st = await client.request("GET", "/status")
    assert all(r["bars"] for r in results)
    assert sim.state()["stats"]["violations"] == []
    assert sim.state()["stats"]["requests"]["reqHistoricalData"] == 200
    lower_bound = 3 * 600 * scale  # requests 61, 121 and 181 each wait a full window
    assert elapsed >= lower_bound  # the limit was real
    assert elapsed <= 1.2 * lower_bound, (elapsed, lower_bound)
    assert st["pacing"]["delayedByRule"]["window"] > 0  # held by the 10-minute rule


async def test_minute_bars_are_not_held_by_the_ten_minute_rule(tmp_path: Path) -> None:
    """1-hour bars: IB lifted the hard limits; 200 requests run through the soft
    throttle's window, no 10-minute waits, no violations."""
    scale = 0.01
    symbols = ["AAPL", "MSFT", "AMZN", "SPY", "QQQ", "TSLA", "NVDA", "GOOGL", "META", "IBM"]
    async with Simulator("127.0.0.1", 0, start_time=SIM_START, pacing_scale=scale) as sim:
        async with running_connector(tmp_path, sim, pacing__margin=0.1) as (con, client):
            bodies = [{"symbol": symbols[i % 10], "barSize": "1 hour", "duration": "1 D",
                       "end": f"2025-11-{10 + (i // 10) % 12:02d}T21:00:00Z",
                       "whatToShow": "TRADES" if i < 120 else "MIDPOINT"} for i in range(200)]
            t0 = time.monotonic()
            results = await asyncio.gather(*(client.request("POST", "/historical",
                                                            json_body=b) for b in bodies))
            elapsed = time.monotonic() - t0
            st = await client.request("GET", "/status")
    assert all(r["bars"] for r in results)
    assert sim.state()["stats"]["violations"] == []
    assert elapsed < 3 * 600 * scale  # the hard rules would need three 6 s windows
    assert st["pacing"]["delayedByRule"]["window"] == 0


async def test_validate_head_timestamp_and_option_chain(sim: Simulator, tmp_path: Path) -> None:
    async with running_connector(tmp_path, sim) as (con, client):
        v = await client.request("POST", "/validate", json_body={"symbol": "aapl"})
        assert v["conId"] == 265598 and v["primaryExchange"] == "NASDAQ"
        assert v["timeZone"] == "US/Eastern" and v["minTick"] == 0.01
        assert v["longName"] == "APPLE INC" and "0930" in v["liquidHours"]
        fx = await client.request("POST", "/validate", json_body={"symbol": "EUR.USD",
                                                                   "secType": "CASH"})
        assert fx["localSymbol"] == "EUR.USD" and fx["exchange"] == "IDEALPRO"
        e = await expect_error(client.request("POST", "/validate",
                                              json_body={"symbol": "NOPE"}), "not_found")
        assert e.ib_code == 200 and e.status == 404
        amb = await expect_error(client.request("POST", "/validate", json_body={
            "symbol": "SHOP", "currency": ""}), "ambiguous", "symbol")
        assert len(amb.extra["candidates"]) == 2
        h = await client.request("GET", "/head-timestamp", params={"symbol": "AAPL"})
        assert h["headTimestamp"] == "1980-12-12T14:30:00+00:00"
        ch = await client.request("GET", "/option-chain", params={"symbol": "AMZN"})
        smart = next(c for c in ch["chains"] if c["exchange"] == "SMART")
        assert len(smart["expirations"]) >= 8 and len(smart["strikes"]) == 41
        assert smart["multiplier"] == "100"


async def test_snapshots(sim: Simulator, tmp_path: Path) -> None:
    async with running_connector(tmp_path, sim) as (con, client):
        s = await client.request("POST", "/snapshot", json_body={"symbol": "AAPL"})
        assert 0 < s["bid"] < s["ask"] and s["delayed"] is False
        ch = await client.request("GET", "/option-chain", params={"symbol": "AAPL"})
        smart = next(c for c in ch["chains"] if c["exchange"] == "SMART")
        opt = {"symbol": "AAPL", "secType": "OPT", "expiry": smart["expirations"][2],
               "strike": smart["strikes"][20], "right": "C"}
        o = await client.request("POST", "/snapshot", json_body={
            **opt, "genericTicks": [100, 101, 104, 106]})
        assert o["greeks"]["delta"] is not None and 0 < o["greeks"]["delta"] < 1
        assert o["histVolatility"] > 0 and o["impliedVolatility"] > 0
        assert o["callOpenInterest"] > 0 and isinstance(o["callOpenInterest"], int)
        u = await client.request("POST", "/snapshot", json_body={"symbol": "AAPL",
                                                                  "genericTicks": [101]})
        # open interest counts whole contracts, in the simulator as at IB
        assert u["putOpenInterest"] == int(u["putOpenInterest"]) > 0
        sim.set_no_subscription("TSLA", 10089)
        e = await expect_error(client.request("POST", "/snapshot",
                                              json_body={"symbol": "TSLA"}),
                               "subscription_required")
        assert e.ib_code == 10089
        d = await client.request("POST", "/snapshot", json_body={"symbol": "TSLA",
                                                                  "marketDataType": 3})
        assert d["delayed"] is True and d["bid"] > 0


async def test_snapshots_of_different_market_data_types_at_once_each_get_theirs(
        sim: Simulator, tmp_path: Path) -> None:
    """IB applies the market-data type in force when a request arrives: an option's
    delayed quote and its underlying's live one asked together (the bridge's option
    quote) each come as asked: the delayed one is not sent under the other's type."""
    sim.set_no_subscription("TSLA", 10089)  # delayed data only, as for most options
    async with running_connector(tmp_path, sim) as (_, client):
        for _ in range(3):
            delayed, live = await asyncio.gather(*(
                client.request("POST", "/snapshot", json_body={"symbol": s,
                                                               "marketDataType": t})
                for s, t in (("TSLA", 3), ("MSFT", 1))))
            assert delayed["delayed"] is True and delayed["bid"] > 0
            assert live["marketDataType"] == 1 and live["delayed"] is False


async def test_concurrent_snapshots_of_one_contract_share_one_request_at_ib(
        sim: Simulator, tmp_path: Path) -> None:
    """Ten callers asking for AAPL at once: one reqMktData reaches IB, all ten get its
    answer; a caller that goes away does not fail the others; another contract, or
    the next snapshot after the answer, asks IB again (polled contracts not held)."""
    async with running_connector(tmp_path, sim, streams__snapshot_hold=0) as (con, client):
        def asked() -> int:
            return int(sim.state()["stats"]["requests"].get("reqMktData", 0))

        await client.request("POST", "/snapshot", json_body={"symbol": "AAPL"})  # warm
        before = asked()
        got = await asyncio.gather(*(client.request("POST", "/snapshot",
                                                    json_body={"symbol": "AAPL"})
                                     for _ in range(10)))
        assert asked() - before == 1
        assert all(g == got[0] for g in got) and 0 < got[0]["bid"] < got[0]["ask"]
        # the first caller gives up at once: the one waiting with it still gets an answer
        before = asked()
        first = asyncio.ensure_future(client.request("POST", "/snapshot",
                                                     json_body={"symbol": "MSFT"}))
        await wait_until(lambda: asked() > before)
        second = asyncio.ensure_future(client.request("POST", "/snapshot",
                                                      json_body={"symbol": "MSFT"}))
        await asyncio.sleep(0)
        first.cancel()
        q = await second
        assert q["symbol"] == "MSFT" and q["bid"] > 0
        # after the answer, the next snapshot is a new one
        before = asked()
        await client.request("POST", "/snapshot", json_body={"symbol": "AAPL"})
        assert asked() - before == 1


async def test_a_polled_contract_is_held_as_a_live_quote_then_let_go(
        sim: Simulator, tmp_path: Path) -> None:
    """The second snapshot of AAPL within streams.snapshot_hold seconds keeps its quote
    streaming: the next polls cost no message to IB and say their age; a contract asked
    once is not held; once the polls stop, the quote is cancelled at IB."""
    async with running_connector(tmp_path, sim, streams__snapshot_hold=2.0) as (con,
                                                                                client):
        def asked(name: str = "reqMktData") -> int:
            return int(sim.state()["stats"]["requests"].get(name, 0))

        msft = await client.request("POST", "/snapshot", json_body={"symbol": "MSFT"})
        for _ in range(2):
            await client.request("POST", "/snapshot", json_body={"symbol": "AAPL"})
        await wait_until(lambda: con.streams.held_quote(265598, []) is not None)
        assert con.streams.held_quote(msft["conId"], []) is None  # asked once
        before = asked()
        for _ in range(10):  # polled every 0.4 s for 4 s: longer than the hold itself
            headers: dict[str, str] = {}
            q = await client.request("POST", "/snapshot", json_body={"symbol": "AAPL"},
                                     answer_headers=headers)
            assert q["symbol"] == "AAPL" and 0 < q["bid"] < q["ask"]
            assert float(headers["x-ibhost-state-age"]) < 5
            await asyncio.sleep(0.4)
        assert asked() == before  # answered from the held quote
        cancels = asked("cancelMktData")
        await wait_until(lambda: asked("cancelMktData") > cancels, timeout=10)
        assert con.streams.held_quote(265598, []) is None


async def test_a_contract_polled_as_type_3_is_held_where_ib_answers_it_live(
        sim: Simulator, tmp_path: Path) -> None:
    """Market-data type 3 is "delayed where not subscribed": IB answers it live where
    the user is (the wheel-strat bridge asks its option quotes so). Polled so, AAPL
    (subscribed) is held as a live quote and its next polls cost IB nothing; TSLA
    (delayed only here) comes back delayed and is asked of IB each time."""
    sim.set_no_subscription("TSLA", 10089)
    async with running_connector(tmp_path, sim, streams__snapshot_hold=5.0) as (con,
                                                                                client):
        def asked() -> int:
            return int(sim.state()["stats"]["requests"].get("reqMktData", 0))

        async def poll(symbol: str) -> dict[str, Any]:
            q: dict[str, Any] = await client.request(
                "POST", "/snapshot", json_body={"symbol": symbol, "marketDataType": 3})
            return q

        for _ in range(2):
            assert (await poll("AAPL"))["marketDataType"] == 1
            assert (await poll("TSLA"))["delayed"] is True
        await wait_until(lambda: con.streams.held_quote(265598, []) is not None)
        before = asked()
        for _ in range(5):
            q = await poll("AAPL")
            assert q["marketDataType"] == 1 and 0 < q["bid"] < q["ask"]
        assert asked() == before  # answered from the held live quote
        for _ in range(3):
            assert (await poll("TSLA"))["delayed"] is True
        assert asked() == before + 3  # a delayed answer is not held
        tsla = await client.request("POST", "/validate", json_body={"symbol": "TSLA"})
        assert con.streams.held_quote(tsla["conId"], []) is None


async def test_orders_executions_positions(sim: Simulator, tmp_path: Path) -> None:
    async with running_connector(tmp_path, sim) as (con, client):
        rest = await client.request("POST", "/orders", json_body={
            "symbol": "AAPL", "action": "BUY", "quantity": 5, "orderType": "LMT",
            "limitPrice": 1.0, "orderRef": "rest-1"})
        assert rest["status"] == "Submitted" and rest["duplicate"] is False
        opens = await client.request("GET", "/orders")
        assert [o["orderId"] for o in opens] == [rest["orderId"]]
        cancelled = await client.request("DELETE", f"/orders/{rest['orderId']}")
        assert cancelled["status"] == "Cancelled"
        await expect_error(client.request("DELETE", f"/orders/{rest['orderId']}"), "conflict")
        await expect_error(client.request("DELETE", "/orders/424242"), "not_found")
        fill = await client.request("POST", "/orders", json_body={
            "symbol": "MSFT", "action": "BUY", "quantity": 7, "orderType": "MKT",
            "orderRef": "fill-1"})
        assert fill["status"] == "Filled" and fill["filled"] == 7
        dup = await client.request("POST", "/orders", json_body={
            "symbol": "MSFT", "action": "BUY", "quantity": 7, "orderType": "MKT",
            "orderRef": "fill-1"})
        assert dup["duplicate"] is True and dup["orderId"] == fill["orderId"]
        assert len(sim.state()["executions"]) == 1  # one order at the gateway
        ex = await client.request("GET", "/executions", params={"symbol": "MSFT"})
        assert len(ex) == 1 and ex[0]["orderRef"] == "fill-1" and ex[0]["commission"] > 0
        assert await client.request("GET", "/executions", params={"side": "SELL"}) == []
        pos = await client.request("GET", "/positions")
        assert [(p["symbol"], p["position"]) for p in pos] == [("MSFT", 7.0)]


async def test_duplicate_order_ref_survives_a_connector_restart(sim: Simulator,
                                                                tmp_path: Path) -> None:
    body = {"symbol": "IBM", "action": "BUY", "quantity": 3, "orderType": "MKT",
            "orderRef": "idem-42"}
    async with running_connector(tmp_path, sim) as (con, client):
        first = await client.request("POST", "/orders", json_body=body)
    async with running_connector(tmp_path, sim, ib__client_id_start=5) as (con, client):
        again = await client.request("POST", "/orders", json_body=body)
    assert again["duplicate"] is True and again["permId"] == first["permId"]
    assert len(sim.state()["executions"]) == 1


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/historical", {"barSize": "1 min", "duration": "1 D"}, "symbol"),
    ("/historical", {"symbol": "AAPL", "duration": "1 D"}, "barSize"),
    ("/historical", {"symbol": "AAPL", "barSize": "1 minute", "duration": "1 D"}, "barSize"),
    ("/historical", {"symbol": "AAPL", "barSize": "1 min", "duration": "1 Q"}, "duration"),
    ("/historical", {"symbol": "AAPL", "barSize": "1 secs", "duration": "1 D"}, "duration"),
    ("/historical", {"symbol": "AAPL", "barSize": "1 min", "start": "yesterday"}, "start"),
    ("/historical", {"symbol": "AAPL", "barSize": "1 min", "start": "2025-01-02",
                     "end": "2025-01-01"}, "start"),
    ("/historical", {"symbol": "AAPL", "barSize": "1 min"}, "start"),
    ("/historical", {"symbol": "AAPL", "barSize": "1 min", "duration": "1 D",
                     "whatToShow": "PRICES"}, "whatToShow"),
    ("/historical", {"symbol": "AAPL", "barSize": "1 min", "duration": "1 D",
                     "useRTH": "maybe"}, "useRTH"),
    ("/historical", {"symbol": "AAPL", "barSize": "1 min", "duration": "1 D",
                     "priority": "urgent"}, "priority"),
    ("/historical", {"symbol": "AAPL", "secType": "XYZ", "barSize": "1 min",
                     "duration": "1 D"}, "secType"),
    ("/validate", {"symbol": 42}, "symbol"),
    ("/validate", {"symbol": "AAPL", "strike": "high"}, "strike"),
    ("/orders", {"symbol": "AAPL", "action": "HOLD", "quantity": 1}, "action"),
    ("/orders", {"symbol": "AAPL", "action": "BUY", "quantity": -1}, "quantity"),
    ("/orders", {"symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT"},
     "limitPrice"),
    ("/orders", {"symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "STP"},
     "stopPrice"),
    ("/snapshot", {"symbol": "AAPL", "genericTicks": [999]}, "genericTicks"),
    ("/snapshot", {"symbol": "AAPL", "marketDataType": 9}, "marketDataType"),
])
async def test_bad_input_is_a_400_naming_the_field(sim: Simulator, tmp_path: Path, path: str,
                                                   body: dict, field: str) -> None:
    async with running_connector(tmp_path, sim) as (con, client):
        e = await expect_error(client.request("POST", path, json_body=body), "bad_request",
                               field)
        assert e.status == 400 and field in e.message


async def test_malformed_bodies(sim: Simulator, tmp_path: Path) -> None:
    import aiohttp

    async with running_connector(tmp_path, sim) as (con, client):
        conn = aiohttp.UnixConnector(path=con.socket_path)
        async with aiohttp.ClientSession(connector=conn) as http:
            for data in (b"{", b"[1,2]", b"\xff\xfe", b"null"):
                async with http.post("http://x/historical", data=data) as r:
                    body = await r.json()
                    assert r.status == 400 and body["error"]["field"] == "body"
            async with http.post("http://x/historical", data=b"x" * (2 << 20)) as r:
                assert r.status == 413
            async with http.get("http://x/nope") as r:
                assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
            async with http.delete("http://x/orders/abc") as r:
                assert r.status == 400 and (await r.json())["error"]["field"] == "orderId"


async def test_pacing_162_is_retried_then_a_429(sim: Simulator, tmp_path: Path) -> None:
    body = {"symbol": "AAPL", "barSize": "1 hour", "duration": "1 D",
            "end": "2025-11-20T21:00:00Z"}
    async with running_connector(tmp_path, sim) as (con, client):
        sim.force_pacing(1)  # one 162: retried inside the caller's deadline, answered
        ok = await client.request("POST", "/historical", json_body=body, deadline=10)
        assert len(ok["bars"]) == 7 and sim.state()["forced_pacing_left"] == 0
        assert (await client.request("GET", "/status"))["pacing"]["throttled"] == 1
        sim.force_pacing(10)  # IB keeps refusing: 429 once retrying no longer fits
        e = await expect_error(client.request("POST", "/historical", json_body={
            **body, "end": "2025-11-19T21:00:00Z"}, deadline=0.3), "pacing")
        assert e.status == 429 and e.ib_code == 162
        assert sim.state()["forced_pacing_left"] >= 5


async def test_timeouts_raise_not_empty(sim: Simulator, tmp_path: Path) -> None:
    async with running_connector(tmp_path, sim, ib__request_timeout=0.5,
                                 ib__heartbeat_interval=30) as (con, client):
        sim.slow(1500)
        e = await expect_error(client.request("POST", "/historical", json_body={
            "symbol": "AAPL", "barSize": "1 hour", "duration": "1 D",
            "end": "2025-11-19T21:00:00Z", "conId": 265598}), "timeout")
        assert e.status == 504
        sim.slow(0)
