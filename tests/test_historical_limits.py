"""Historical data at IB's real limits: fairness between jobs, cancellation and
deadlines end to end, pacing memory across a connector kill -9, bounded input."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import stat
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from ibhost.ipc.client import UnixClient
from ibhost.sim import Simulator

from .conftest import SIM_START
from .connector_fixtures import running_connector, wait_until
from .test_gateway import KEY, gateway


def ib_contract(con: Any, symbol: str) -> Any:
    return con.session.backend.lib.Stock(symbol, "SMART", "USD")


def open_at_ib(sim: Simulator) -> int:
    return sum(c["openHistorical"] for c in sim.state()["clients"])


async def timed(client: UnixClient, body: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    r = await client.request("POST", "/historical", json_body=body)
    assert r["bars"]
    return time.perf_counter() - t0


async def test_small_request_is_not_starved_by_a_five_year_job(tmp_path: Path) -> None:
    """A 3-day daily request answers within 2x its idle latency while a 5-year 1-minute
    download runs (the soft throttle at a tenth of IB's times: 30 ms answers)."""
    async with Simulator("127.0.0.1", 0, start_time=SIM_START, pacing_scale=0.1) as sim, \
            running_connector(tmp_path, sim) as (con, client):
        symbols = ["MSFT", "AMZN", "SPY", "QQQ", "TSLA", "NVDA", "GOOGL", "META", "IBM",
                   "AAPL"]

        def small(i: int) -> dict[str, Any]:  # distinct, so nothing comes from the cache
            return {"symbol": symbols[i % 10], "barSize": "1 day", "duration": "3 D",
                    "end": f"2025-{1 + i // 20:02d}-{10 + i % 15:02d}T21:00:00Z"}

        idle = [await timed(client, small(i)) for i in range(6)]
        job = asyncio.ensure_future(client.request("POST", "/historical", json_body={
            "symbol": "AAPL", "barSize": "1 min", "start": "2020-11-01T00:00:00Z",
            "end": "2025-11-01T00:00:00Z"}))
        await wait_until(lambda: (con.service.history.jobs and
                                  next(iter(con.service.history.jobs.values()))["chunksDone"] > 20),
                         timeout=20)
        busy = []
        for i in range(6, 12):
            busy.append(await timed(client, small(i)))
            await asyncio.sleep(0.05)
        running = next(iter(con.service.history.jobs.values()))
        assert running["chunksDone"] < running["chunks"]  # the big job was still going
        job.cancel()
        try:
            await wait_until(lambda: open_at_ib(sim) == 0, timeout=5)
        except AssertionError:  # say what was left open, and in what state
            st = sim.state()
            raise AssertionError(
                f"open at IB 5 s after the caller left: {open_at_ib(sim)}; connection "
                f"{con.service.session.state.value}; jobs {con.service.history.jobs}; "
                f"sim requests {st['stats']['requests']}") from None
    assert statistics.median(busy) <= 2 * statistics.median(idle) + 0.01, (idle, busy)
    assert sim.state()["stats"]["violations"] == []


async def test_client_that_hangs_up_leaves_nothing_open_at_ib(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    """Through the gateway: a client that disconnects mid-download has no IB request
    left open within 2 s, and no further chunk is requested."""
    async with running_connector(tmp_path, sim) as (con, _), \
            gateway(aiohttp_client, tmp_path, sim) as gw:
        url = str(gw.make_url("/v1/data/historical"))
        async with aiohttp.ClientSession() as http:
            task = asyncio.ensure_future(http.post(url, json={
                "symbol": "AAPL", "barSize": "1 min", "start": "2023-01-01T00:00:00Z",
                "end": "2025-11-01T00:00:00Z"}))
            await wait_until(lambda: sim.state()["stats"]["requests"].get(
                "reqHistoricalData", 0) > 30, timeout=10)
            assert con.service.history.jobs  # the download is running
            # from now on IB takes 10 s to answer: what is open when the client goes
            # away stays open unless the connector cancels it
            sim.throttle.base = 10.0
            await wait_until(lambda: open_at_ib(sim) > 0, timeout=5)
            task.cancel()  # the client goes away
        # Nothing open at IB is not enough: between one chunk's answer and the next
        # request the download has nothing open either. The job must be gone (its
        # chunks cancelled) and nothing left open.
        await wait_until(lambda: not con.service.history.jobs
                         and not con.session.outstanding(), timeout=2)
        # one round trip on the same connection: the simulator handles messages in
        # order, so whatever the connector sent before it has now been seen. Not
        # reqCurrentTime: the library keys its answer by name, and the heartbeat's own
        # probe, sent before the cancel, would answer it; contract details are keyed
        # by their request id.
        ib = con.session.ib
        assert await ib.reqContractDetailsAsync(ib_contract(con, "AAPL"))
        assert open_at_ib(sim) == 0
        sent = sim.state()["stats"]["requests"]["reqHistoricalData"]
        await asyncio.sleep(0.5)
        assert sim.state()["stats"]["requests"]["reqHistoricalData"] == sent


async def test_deadline_is_kept_and_cancels_at_ib(sim: Simulator, tmp_path: Path,
                                                  aiohttp_client: Any) -> None:
    async with running_connector(tmp_path, sim), gateway(aiohttp_client, tmp_path, sim) as gw:
        sim.slow(400)  # every request takes at least 0.4 s at the simulator
        t0 = time.monotonic()
        r = await gw.post("/v1/data/historical?timeout=1", json={
            "symbol": "AAPL", "barSize": "1 min", "start": "2024-01-01T00:00:00Z",
            "end": "2025-11-01T00:00:00Z"})
        took = time.monotonic() - t0
        body = await r.json()
        assert r.status == 504 and body["error"]["code"] == "timeout", body
        assert took < 2.0
        sim.slow(0)
        await wait_until(lambda: open_at_ib(sim) == 0, timeout=2)
        bad = await gw.post("/v1/data/historical?timeout=soon", json={
            "symbol": "AAPL", "barSize": "1 day", "duration": "5 D"})
        assert bad.status == 400 and (await bad.json())["error"]["field"] == "timeout"


async def test_huge_duration_is_a_400_and_ib_stays_up(sim: Simulator, tmp_path: Path,
                                                      aiohttp_client: Any) -> None:
    async with running_connector(tmp_path, sim), gateway(aiohttp_client, tmp_path, sim) as gw:
        for dur in ("1000000 W", "99999999999999999999 D", "0 D", "13 M", "3 X"):
            r = await gw.post("/v1/data/historical", json={
                "symbol": "AAPL", "barSize": "1 day", "duration": dur})
            body = await r.json()
            assert r.status == 400 and body["error"]["field"] == "duration", (dur, body)
        br = await gw.post("/historical", json={"symbol": "AAPL", "duration": "1000000 W"},
                           headers={"X-API-KEY": KEY})
        assert br.status == 400 and (await br.json())["field"] == "duration"
        assert sim.state()["stats"]["requests"].get("reqHistoricalData", 0) == 0
        ok = await gw.post("/v1/data/historical", json={
            "symbol": "AAPL", "barSize": "1 day", "duration": "5 D",
            "end": "2025-11-22T00:00:00Z"})
        assert ok.status == 200 and (await ok.json())["count"] == 5


async def _connector_process(home: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ibhost.cli", "connector", "--home", str(home),
        "--set", "connector.log_level=WARNING", stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)


async def _ready(sock: Path) -> UnixClient:
    await wait_until(lambda: sock.exists(), timeout=20)
    client = UnixClient(str(sock), read_timeout=60)
    for _ in range(200):
        try:
            if (await client.request("GET", "/health"))["status"] == "ok":
                return client
        except Exception:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("connector not ready")


async def test_pacing_memory_survives_kill_9(tmp_path: Path) -> None:
    """30-second bars (IB's hard rules, at a fifth of IB's windows: identical within
    3 s): kill -9 the connector right after a request and ask the same again from
    its successor: it waits the window out, IB sees no violation."""
    async with Simulator("127.0.0.1", 0, start_time=SIM_START, pacing_scale=0.2) as sim:
        home = tmp_path / "home"
        home.mkdir()
        (home / "ibhost.toml").write_text(
            f"[ib]\nport = {sim.port}\nsettle_delay = 0.1\nbackoff = [0.2]\n"
            "probe_interval = 0.1\n[pacing]\nscale = 0.2\nmargin = 0.1\n")
        sock = home / "run" / "connector.sock"
        bodies = [{"symbol": s, "barSize": "30 secs", "duration": "1800 S",
                   "end": "2025-11-20T19:00:00Z"} for s in ("AAPL", "MSFT", "SPY")]
        proc = await _connector_process(home)
        try:
            client = await _ready(sock)
            for b in bodies:
                assert (await client.request("POST", "/historical", json_body=b))["bars"]
            await client.close()
            proc.send_signal(signal.SIGKILL)  # no chance to save anything now
            await proc.wait()
            assert (home / "data" / "pacing.state").exists()
            proc = await _connector_process(home)
            client = await _ready(sock)
            t0 = time.monotonic()
            for b in bodies:  # identical to the ones just sent
                assert (await client.request("POST", "/historical", json_body=b))["bars"]
            await client.close()
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 15)
        assert sim.state()["stats"]["violations"] == []
        assert sim.state()["stats"]["requests"]["reqHistoricalData"] == 6
        assert time.monotonic() - t0 < 5.0


async def test_pacing_memory_file_is_whole_and_owner_only(tmp_path: Path) -> None:
    """The hard-rule memory survives a restart, a write cut short at any byte, an
    unreadable file and the plain-JSON file of earlier releases; it is owner-only."""
    from ibhost.config import PacingConfig
    from ibhost.connector.pacing import PaceKey, Scheduler

    path = tmp_path / "pacing.state"

    def key(n: int) -> PaceKey:
        return PaceKey(("hist", n, "SMART", "e", "1800 S", "30 secs", "TRADES", True),
                       (n, "SMART", "TRADES"))

    async def noop() -> int:
        return 1

    # stopped clocks: the identical-request window (0.35 s at this scale) must not
    # run out between one scheduler and the next, however slow the machine is
    # (moved by hand only between two hard requests, which never go back to back)
    wall_now = 1.8e9
    now = [5000.0]

    def sched(p: Path = path) -> Scheduler:
        return Scheduler(PacingConfig(scale=0.01), clock=lambda: now[0], state_path=p,
                         wall=lambda: wall_now)

    s1 = sched()
    assert await s1.run(noop, key=key(1)) == 1
    now[0] += 0.05
    assert await s1.run(noop, key=key(2)) == 1
    s1.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    s2 = sched()
    assert key(2).identical in s2._sent_identical and s2.window_used() == 2
    s2.close()
    # a third request's write cut short anywhere: the memory of the first two stands
    whole = path.read_bytes()
    s3 = sched()
    assert await s3.run(noop, key=key(3)) == 1
    s3.close()
    third = path.read_bytes()
    changed = [i for i in range(len(third)) if i >= len(whole) or third[i] != whole[i]]
    for cut in range(changed[0], changed[-1] + 1, 3):
        path.write_bytes(third[:cut] + whole[cut:])
        s = sched()
        assert s.window_used() in (2, 3) and key(2).identical in s._sent_identical, cut
        s.close()
    path.write_bytes(b"{not json")
    s4 = sched()  # unreadable: ignored
    assert s4.window_used() == 0
    s4.close()
    old = tmp_path / "pacing.json"  # as earlier releases wrote it
    old.write_text(json.dumps({"identical": [], "burst": [], "window": [[wall_now - 1, 1]]}))
    s5 = sched(old)
    assert s5.window_used() == 1
    s5.close()
    assert not list(tmp_path.glob("*.tmp"))


async def test_long_ranges_stream_in_order_with_progress(tmp_path: Path,
                                                         aiohttp_client: Any) -> None:
    """A year of 1-minute bars as CSV: the first rows arrive within a second, in time
    order, the job's progress shows in /v1/health/detailed, and the rows equal the
    whole (columnar) answer; records end with a trailing record."""
    async with Simulator("127.0.0.1", 0, start_time=SIM_START, pacing_scale=0.1) as sim, \
            running_connector(tmp_path, sim), gateway(aiohttp_client, tmp_path, sim) as gw:
        body = {"symbol": "AAPL", "barSize": "1 min", "start": "2024-11-01T00:00:00Z",
                "end": "2025-11-01T00:00:00Z"}
        t0 = time.monotonic()
        r = await gw.post("/v1/data/historical?format=csv", json=body)
        assert r.status == 200 and int(r.headers["X-Ibhost-Requests"]) > 300
        assert r.headers["X-Request-ID"]
        first = await r.content.readline()
        assert first.decode().startswith("timestamp,open,high")
        row = await r.content.readline()
        first_row_at = time.monotonic() - t0
        detail = await (await gw.get("/v1/health/detailed", headers={"X-API-Key": KEY})).json()
        jobs = detail["connector"]["historicalJobs"]
        assert jobs and jobs[0]["chunks"] > 300 and jobs[0]["chunksDone"] < jobs[0]["chunks"]
        rest = (await r.text()).strip().splitlines()
        total = time.monotonic() - t0
        stamps = [row.decode().split(",")[0]] + [ln.split(",")[0] for ln in rest]
        assert first_row_at < 1.0 and first_row_at < total / 4, (first_row_at, total)
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert len(stamps) > 90_000
        small = {**body, "start": "2025-09-01T00:00:00Z"}
        whole = await (await gw.post("/v1/data/historical", json=small)).json()
        csv = (await (await gw.post("/v1/data/historical?format=csv", json=small)).text())
        lines = csv.strip().splitlines()[1:]
        assert [ln.split(",")[0] for ln in lines] == whole["data"]["timestamp"]
        assert [float(ln.split(",")[4]) for ln in lines] == whole["data"]["close"]
        rec = await (await gw.post("/v1/data/historical?format=records", json=small)).json()
        assert rec["complete"] is True and rec["count"] == whole["count"] == len(rec["bars"])
        assert rec["bars"][0]["timestamp"] == whole["data"]["timestamp"][0]


async def test_a_stream_that_fails_half_way_is_cut_off(tmp_path: Path,
                                                       aiohttp_client: Any) -> None:
    async with Simulator("127.0.0.1", 0, start_time=SIM_START, pacing_scale=0.1) as sim, \
            running_connector(tmp_path, sim), gateway(aiohttp_client, tmp_path, sim) as gw:
        r = await gw.post("/v1/data/historical?format=records", json={
            "symbol": "AAPL", "barSize": "1 min", "start": "2024-11-01T00:00:00Z",
            "end": "2025-11-01T00:00:00Z"})
        assert r.status == 200
        await r.content.readexactly(200)  # streaming
        sim.drop()  # the IB connection goes away under the download
        try:
            text = await r.text()
        except aiohttp.ClientPayloadError:
            return  # cut off: the client knows the answer is not whole
        raise AssertionError(f"a failed stream ended cleanly: ...{text[-80:]}")


def test_open_window_is_aimd() -> None:
    """Grows by one per window of answers, halves on a 162 or on answers much slower
    than usual (at most once per round trip), never below one or above its maximum."""
    from ibhost.connector.pacing import OpenWindow

    t = [0.0]
    w = OpenWindow(4, 8, clock=lambda: t[0])
    for _ in range(40):
        w.open += 1
        w.done(0.1, False)
        t[0] += 0.05
    assert w.limit == 8.0 and w.allows(small=False) and w.open == 0
    w.open = 1
    w.done(None, True)  # a pacing 162
    assert w.limit == 4.0
    w.open = 1
    w.done(2.0, False)  # 20x slower than usual, but within the same round trip: once
    assert w.limit == 4.0
    t[0] += 5.0
    w.open = 1
    w.done(2.0, False)
    assert w.limit == 2.0
    for _ in range(5):
        t[0] += 5.0
        w.open = 1
        w.done(None, True)
    assert w.limit == 1.0
    w.open = 1
    assert not w.allows(small=False) and w.allows(small=True)  # a small job's extra slot


async def test_callers_are_served_round_robin() -> None:
    """One caller with many queued requests does not starve another's one."""
    from ibhost.config import PacingConfig
    from ibhost.connector.pacing import PaceKey, Scheduler

    s = Scheduler(PacingConfig(scale=0.01, messages_per_second=1000, open_start=1,
                               open_max=1))
    order: list[str] = []
    gate = asyncio.Event()

    def work(tag: str) -> Any:
        async def fn() -> str:
            await gate.wait()
            order.append(tag)
            return tag
        return fn

    def key(i: int) -> PaceKey:
        return PaceKey(("hist", i), (i,), hard=False)

    # caller A: three requests (jobs) of three chunks each; caller B: one
    big = [asyncio.ensure_future(s.run(work(f"A{i}"), key=key(i), job=f"A/{i % 3}",
                                       small=False)) for i in range(9)]
    await asyncio.sleep(0.05)
    other = asyncio.ensure_future(s.run(work("B0"), key=key(100), job="B/1", small=False))
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.gather(*big, other)
    s.close()
    assert order.index("B0") <= 1, order  # right after the one A already running
    assert sorted(order[2:5]) == ["A1", "A2", "A3"] or order.index("B0") == 1


async def test_a_cancelled_call_never_goes_on_as_if_answered(sim: Simulator,
                                                              tmp_path: Path) -> None:
    """A caller cancelled as IB's answer arrives is cancelled, whatever the moment:
    Python 3.11's ``asyncio.wait_for`` handed such a caller the answer and dropped the
    cancellation, so a download whose caller had hung up went on (every step of the
    handover is tried)."""
    async with running_connector(tmp_path, sim) as (con, _):
        calls = con.service.calls
        for steps in [*range(12)] * 3:
            answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()

            async def fn(answer: asyncio.Future[int] = answer) -> int:
                return await answer

            caller = asyncio.ensure_future(calls.call("test", fn))
            await wait_until(lambda: con.session.in_flight > 0, timeout=2)
            answer.set_result(steps)
            for _ in range(steps):
                await asyncio.sleep(0)
            was_done = caller.done()
            caller.cancel()
            try:
                got = await caller
            except asyncio.CancelledError:
                continue
            assert was_done, f"cancelled {steps} steps after the answer, yet answered {got}"


def test_one_request_in_trading_days_where_ib_allows_it() -> None:
    """30 calendar days of hourly bars fit one "N D" request (IB counts days as
    sessions for intraday bars); N covers every session that can touch the range."""
    from ibhost import ibrules

    end = dt.datetime(2025, 11, 21, tzinfo=dt.UTC)  # a Friday
    n = ibrules.one_request_days(3600, end - dt.timedelta(days=30), end)
    # the weekdays from 2025-10-21 (start's date - 1) to 2025-11-22 (end's date + 1)
    assert n == 24
    # crypto trades every day: 33 sessions may touch it, more than 31 D allows
    assert ibrules.one_request_days(3600, end - dt.timedelta(days=30), end,
                                    weekends=True) is None
    assert ibrules.one_request_days(3600, end - dt.timedelta(days=20), end,
                                    weekends=True) == 23
    assert ibrules.one_request_days(3600, end - dt.timedelta(days=60), end) is None  # > 31 D
    assert ibrules.one_request_days(60, end - dt.timedelta(days=2), end) is None  # 1 min: 1 D
    assert ibrules.one_request_days(86400, end - dt.timedelta(days=400), end) is None


async def test_a_month_of_hourly_bars_is_one_request_and_loses_no_bar(
        sim: Simulator, tmp_path: Path) -> None:
    """The month in one IB request holds exactly the bars of its six 5-day parts,
    each asked on its own (one 4 W request each, cut to its part)."""
    async with running_connector(tmp_path, sim) as (_, client):
        def asked() -> int:
            return int(sim.state()["stats"]["requests"].get("reqHistoricalData", 0))

        start = "2025-10-22T14:00:00+00:00"
        before = asked()
        whole = await client.request("POST", "/historical", json_body={
            "symbol": "MSFT", "barSize": "1 hour", "start": start,
            "end": "2025-11-21T14:00:00+00:00"})
        assert asked() - before == 1
        t0 = dt.datetime.fromisoformat(start)
        parts: list[Any] = []
        for i in range(6):
            a, b = t0 + dt.timedelta(days=5 * i), t0 + dt.timedelta(days=5 * (i + 1))
            part = await client.request("POST", "/historical", json_body={
                "symbol": "MSFT", "barSize": "1 hour", "start": a.isoformat(),
                "end": b.isoformat()})
            parts.extend(part["bars"])
        assert len(whole["bars"]) > 100
        assert whole["bars"] == parts
