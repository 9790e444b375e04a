"""The gap-filler against the simulator: only real gaps are found (weekends,
holidays, half days, CME's daily break and hours outside the session are not),
the filled bars equal the simulator's, halts are remembered, corrupt files are
left alone, and a kill at any moment leaves every file whole."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ibhost.connector.client import ConnectorClient
from ibhost.gapfill import store
from ibhost.gapfill.api import routes
from ibhost.gapfill.core import GapFiller
from ibhost.ipc.server import serve_routes
from ibhost.sim import Simulator
from ibhost.sim.universe import Query

from .connector_fixtures import make_config, running_connector
from .test_gateway import KEY, gateway

NOW = dt.datetime(2025, 12, 3, 21, 30, tzinfo=dt.UTC)  # a Wednesday, after the close


def ts(s: str) -> int:
    return int(dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp())


def truth(sim: Simulator, q: Query, start: int, end: int, bar: int, what: str = "TRADES",
          rth: bool = True) -> dict[int, dict[str, Any]]:
    lst = sim.universe.match(q)
    if q.secType == "FUT":
        lst = sorted(lst, key=lambda x: x.lastTradeDate)
    bars = sim.market.bars(lst[0], start, end, bar, what, rth)
    out = {}
    for b in bars:
        t = b.start if bar < 86400 else int(dt.datetime.strptime(
            dt.datetime.fromtimestamp(b.start, dt.UTC).strftime("%Y%m%d"), "%Y%m%d").replace(
            tzinfo=dt.UTC).timestamp())
        out[t] = {"open": b.open, "high": b.high, "low": b.low, "close": b.close,
                  "volume": b.volume}
    return out


def rows(path: Path) -> dict[int, tuple[float, ...]]:
    df = pd.read_csv(path, index_col=0, parse_dates=True)  # KTRDR's LocalDataLoader
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    return {int(t.timestamp()): tuple(float(x) for x in r) for t, r in
            zip(df.index, df.itertuples(index=False), strict=True)}


def same(a: dict[int, tuple[float, ...]], b: dict[int, dict[str, Any]]) -> bool:
    return a.keys() == b.keys() and all(
        a[t] == pytest.approx(tuple(float(b[t][k]) for k in
                                    ("open", "high", "low", "close", "volume"))) for t in a)


@contextlib.asynccontextmanager
async def filler(sim: Simulator, home: Path, **over: Any) -> AsyncIterator[GapFiller]:
    sim.set_time(NOW)
    async with running_connector(home, sim):
        cfg = make_config(home, sim, **over)
        client = ConnectorClient(str(cfg.connector_socket), read_timeout=60)
        f = GapFiller(cfg, client, clock=sim.now)
        f.dir.mkdir(parents=True, exist_ok=True)
        try:
            yield f
        finally:
            await client.close()


@pytest.mark.parametrize(("name", "query", "what", "start", "holes"), [
    # Thanksgiving (27th) and the half day after it (28th, closes 13:00 New York),
    # two weekends: only the Monday hole is a gap
    ("AAPL_1h.csv", Query(symbol="AAPL", secType="STK", currency="USD"), "TRADES",
     "2025-11-20T00:00:00Z", ["2025-12-01T17:00:00Z", "2025-12-01T18:00:00Z"]),
    ("AAPL_1d.csv", Query(symbol="AAPL", secType="STK", currency="USD"), "TRADES",
     "2025-11-10T00:00:00Z", ["2025-11-25T00:00:00Z"]),
    # forex across a weekend
    ("EUR.USD_1h.csv", Query(symbol="EUR", secType="CASH", currency="USD"), "BID",
     "2025-11-26T00:00:00Z", ["2025-12-01T03:00:00Z"]),
    # a future across CME's daily break (17:00-18:00 New York) on extended hours
    ("ES_1h.csv", Query(symbol="ES", secType="FUT", currency="USD"), "TRADES",
     "2025-11-30T00:00:00Z", ["2025-12-02T12:00:00Z"]),
])
async def test_only_real_gaps_are_found_and_filled(sim: Simulator, tmp_path: Path, name: str,
                                                   query: Query, what: str, start: str,
                                                   holes: list[str]) -> None:
    tf = name.rsplit("_", 1)[1][:-4]
    bar = store.TIMEFRAME_SECONDS[tf]
    rth = not name.startswith("ES")
    over = {} if rth else {"gapfill__extended_hours": name[:-4]}
    async with filler(sim, tmp_path, **over) as f:
        want = truth(sim, query, ts(start), int(NOW.timestamp()), bar, what, rth)
        assert all(ts(h) in want for h in holes)
        store.new_file(f.dir / name, {t: b for t, b in want.items()
                                      if t not in {ts(h) for h in holes}})
        before = (f.dir / name).read_bytes()
        out = await f.scan([name])
        st = out["files"][0]
        assert st["lastError"] is None, st
        assert st["gapsFound"] == 1 and st["barsWritten"] == len(holes), st
        assert st["missingBars"] == 0
        assert same(rows(f.dir / name), want)  # filled with exactly the simulator's bars
        after = (f.dir / name).read_bytes()
        kept = [ln for ln in before.decode().splitlines()]
        assert all(ln in after.decode().splitlines() for ln in kept)  # lines kept as written
        again = await f.scan([name])
        assert again["files"][0]["gapsFound"] == 1  # cumulative: nothing new found


async def test_tail_and_remembered_halts(sim: Simulator, tmp_path: Path) -> None:
    """The tail (last bar -> now) is a gap; a range IB has no data for (a halt) is
    asked once, remembered across restarts, and not asked again."""
    name = "MSFT_1h.csv"
    q = Query(symbol="MSFT", secType="STK", currency="USD")
    async with filler(sim, tmp_path) as f:
        want = truth(sim, q, ts("2025-11-24T00:00:00Z"), int(NOW.timestamp()), 3600)
        store.new_file(f.dir / name, {t: b for t, b in want.items()
                                      if t < ts("2025-12-02T00:00:00Z")})
        sim.set_missing("MSFT", [(dt.datetime(2025, 12, 2, 14, 0, tzinfo=dt.UTC),
                                  dt.datetime(2025, 12, 2, 17, 0, tzinfo=dt.UTC))])
        st = (await f.scan([name]))["files"][0]
        halted = {t for t in want if ts("2025-12-02T14:00:00Z") <= t < ts(
            "2025-12-02T17:00:00Z")}
        assert st["barsWritten"] == len([t for t in want if t >= ts(
            "2025-12-02T00:00:00Z")]) - len(halted)
        assert st["missingBars"] == len(halted) and st["lastBar"] == "2025-12-03T20:00:00Z"
        asked = sim.state()["stats"]["requests"]["reqHistoricalData"]
        f2 = GapFiller(f.cfg, f.connector, clock=sim.now)  # a restart: state from disk
        st2 = (await f2.scan([name]))["files"][0]
        assert st2["gapsFound"] == 0 and st2["missingBars"] == 0
        assert sim.state()["stats"]["requests"]["reqHistoricalData"] == asked


async def test_corrupt_file_is_reported_and_left_as_it_is(sim: Simulator,
                                                          tmp_path: Path) -> None:
    async with filler(sim, tmp_path) as f:
        want = truth(sim, Query(symbol="SPY", secType="STK", currency="USD"),
                     ts("2025-11-24T00:00:00Z"), int(NOW.timestamp()), 3600)
        path = f.dir / "SPY_1h.csv"
        store.new_file(path, {t: b for i, (t, b) in enumerate(sorted(want.items()))
                              if i != 10})
        lines = path.read_text().splitlines()
        lines[-5] = lines[-5].replace(",", ";", 2)
        path.write_text("\n".join(lines) + "\n")
        before = path.read_bytes()
        st = (await f.scan(["SPY_1h.csv"]))["files"][0]
        assert "line -5" in st["lastError"] and "left as it is" in st["lastError"]
        assert path.read_bytes() == before
        assert f.metrics.errors.labels("corrupt")._value.get() == 1


async def test_round_robin_and_status(sim: Simulator, tmp_path: Path) -> None:
    async with filler(sim, tmp_path, gapfill__files_per_cycle=2) as f:
        q = Query(symbol="AAPL", secType="STK", currency="USD")
        want = truth(sim, q, ts("2025-12-01T00:00:00Z"), int(NOW.timestamp()), 86400)
        for n in ("AAPL_1d.csv", "IBM_1d.csv", "MSFT_1d.csv", "NOTES.txt"):
            (f.dir / n).write_text("timestamp,open\nnot,a,bar\n")
        store.new_file(f.dir / "AAPL_1d.csv", want)
        seen = []
        for _ in range(3):
            seen += [r["file"] for r in (await f.scan())["files"]]
        assert sorted(set(seen)) == ["AAPL_1d.csv", "IBM_1d.csv", "MSFT_1d.csv"]
        assert seen[:3] == ["AAPL_1d.csv", "IBM_1d.csv", "MSFT_1d.csv"]
        status = f.status()
        assert status["files"] == 3 and status["perFile"]["IBM_1d.csv"]["lastError"]


async def test_scan_through_the_gateway(sim: Simulator, tmp_path: Path,
                                        aiohttp_client: Any) -> None:
    """POST /v1/gapfill/scan (and KTRDR's force-scan path) fills a hole within one
    cycle, and the status pages show it."""
    async with filler(sim, tmp_path) as f:
        sock = str(f.cfg.path(f.cfg.gapfill.socket))
        server = await serve_routes(routes(f), sock)
        try:
            async with gateway(aiohttp_client, tmp_path, sim) as gw:
                q = Query(symbol="QQQ", secType="STK", currency="USD")
                want = truth(sim, q, ts("2025-11-24T00:00:00Z"), int(NOW.timestamp()), 3600)
                hole = sorted(want)[20]
                store.new_file(f.dir / "QQQ_1h.csv", {t: b for t, b in want.items()
                                                       if t != hole})
                keyless = await gw.post("/v1/gapfill/scan", json={"files": ["QQQ_1h.csv"]})
                assert keyless.status == 401  # a scan sets IB requests going: key needed
                r = await gw.post("/api/v1/system/gap-filler/force-scan",
                                  json={"files": ["QQQ_1h.csv"]}, headers={"X-API-Key": KEY})
                body = await r.json()
                assert r.status == 200 and body["files"][0]["barsWritten"] == 1, body
                assert same(rows(f.dir / "QQQ_1h.csv"), want)
                st = await (await gw.get("/v1/gapfill/status")).json()
                assert st["perFile"]["QQQ_1h.csv"]["gapsFilled"] == 1
                assert "dataDir" not in st  # the absolute path only with a key
                k = await (await gw.get("/api/v1/system/gap-filler-status",
                                        headers={"X-API-Key": KEY})).json()
                # KTRDR's shape (tests/test_ktrdr_monitoring.py), ibhost's fields after it
                assert k["statistics"]["gaps_filled"] == 1 and k["dataDir"] == str(f.dir)
                assert {x: k[x] for x in st} == st | {"lastScan": k["lastScan"]}
                bad = await gw.post("/v1/gapfill/scan", json={"files": ["../etc/passwd"]},
                                    headers={"X-API-Key": KEY})
                assert bad.status == 400 and (await bad.json())["error"]["field"] == "files"
                m = await (await gw.get("/metrics")).text()
                assert "ibhost_gapfill_bars_written_total 1.0" in m
                assert 'ibhost_up{program="gapfill"} 1.0' in m
        finally:
            await server.stop(sock)


WRITER = r'''
import random, sys
from pathlib import Path
from ibhost.gapfill import store
path = Path(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
while True:
    tail = store.read_tail(path, 0)
    last = tail.last or 1_700_000_000
    new = {last + 60 * (i + 1): {"open": 1.0 + i, "high": 2.0, "low": 0.5, "close": 1.5,
           "volume": i} for i in range(rng.randint(1, 50))}
    store.merge_write(tail, new)
    print("wrote", flush=True)
'''


def test_kill_9_at_random_moments_never_loses_a_bar(tmp_path: Path) -> None:
    """100 times: a writer merging new bars into a file is killed at a random moment;
    the file always parses and always holds every bar it held before."""
    path = tmp_path / "AAPL_1m.csv"
    store.new_file(path, {1_700_000_000 + 60 * i: {"open": 1.0, "high": 2.0, "low": 0.5,
                                                   "close": 1.5, "volume": 10}
                          for i in range(5000)})
    rng = random.Random(7)
    had = set(rows(path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for i in range(100):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(i)],
                                stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        proc.stdout.readline()  # it has written at least once
        import time
        time.sleep(rng.random() * 0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        now = set(rows(path))
        assert had <= now, f"cycle {i}: bars lost"
        had = now
    leftovers = [p for p in tmp_path.iterdir() if p.name != path.name]
    assert all(p.name.startswith(".") and p.name.endswith(".tmp") for p in leftovers)


def test_scan_reads_only_the_window(tmp_path: Path) -> None:
    path = tmp_path / "AAPL_1m.csv"
    bars = {1_600_000_000 + 60 * i: {"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5,
                                     "volume": 1} for i in range(100_000)}
    store.new_file(path, bars)
    last = max(bars)
    tail = store.read_tail(path, last - 3600)
    assert len(tail.values) == 61 and tail.bytes_read < path.stat().st_size / 20
    assert not tail.at_start
    whole = store.read_tail(path, 0)
    assert whole.at_start and len(whole.values) == 100_000


async def test_gapfill_process_and_ctl_scan(sim: Simulator, tmp_path: Path) -> None:
    """``ibhost gapfill`` as a process: its socket is 0600, ``ibhost ctl scan`` answers,
    SIGTERM stops it cleanly."""
    sim.set_time(NOW)
    async with running_connector(tmp_path, sim):
        env = {**os.environ, "IBHOST_HOME": str(tmp_path)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ibhost.cli", "gapfill", "--set", "gapfill.interval=600",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        sock = tmp_path / "run" / "gapfill.sock"
        try:
            for _ in range(200):
                if sock.exists():
                    break
                await asyncio.sleep(0.05)
            assert (os.stat(sock).st_mode & 0o777) == 0o600
            res = await asyncio.to_thread(subprocess.run, [
                sys.executable, "-m", "ibhost.cli", "ctl", "--home", str(tmp_path),
                "--json", "scan"], capture_output=True, text=True, timeout=60)
            assert res.returncode == 0, res.stderr
            assert '"files": []' in res.stdout
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
        assert not sock.exists()


async def test_backfill_is_resumable_after_kill_9(sim: Simulator, tmp_path: Path) -> None:
    """``ibhost backfill``: killed half way, run again, the file equals the simulator's
    bars for the whole range; a complete run has nothing left to fetch."""
    sim.set_time(NOW)
    args = [sys.executable, "-m", "ibhost.cli", "backfill", "AAPL", "-t", "1m",
            "--since", "2025-11-03", "--until", "2025-12-03T21:00:00Z",
            "--home", str(tmp_path), "--batch", "400", "--set", "gapfill.log_level=WARNING"]
    path = tmp_path / "data" / "bars" / "AAPL_1m.csv"
    async with running_connector(tmp_path, sim):
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        for _ in range(400):  # wait for a few batches, then kill it
            if path.exists() and path.stat().st_size > 60_000:
                break
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        partial = rows(path)  # whole, parseable
        assert 0 < len(partial)
        done = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await done.communicate()
        assert done.returncode == 0, err.decode()
        assert "bars written" in out.decode()
        want = truth(sim, Query(symbol="AAPL", secType="STK", currency="USD"),
                     ts("2025-11-03T00:00:00Z"), ts("2025-12-03T21:00:00Z"), 60)
        got = rows(path)
        assert same(got, want) and set(partial) <= set(got)
        assert len(partial) < len(got)  # it really was cut off half way
        again = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
        out2, _ = await again.communicate()
        assert again.returncode == 0 and "0 bars written (0 were missing" in out2.decode()


async def test_backfill_reports_each_chunk_as_a_log_line_off_a_terminal(
        sim: Simulator, tmp_path: Path) -> None:
    """``ibhost backfill`` with its output in a pipe (a CI log): no bar drawn, one log
    line per chunk IB answered, each with the count, bars/s and the time left."""
    sim.set_time(NOW)
    args = [sys.executable, "-m", "ibhost.cli", "backfill", "AAPL", "-t", "1m",
            "--since", "2025-11-24", "--until", "2025-12-03T21:00:00Z", "--home", str(tmp_path)]
    async with running_connector(tmp_path, sim):
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
    text = err.decode()
    assert proc.returncode == 0, text
    assert "\r" not in text and "|" not in text  # no bar
    lines = re.findall(r"AAPL_1m\.csv: ([\d,]+) of ([\d,]+) bars \((\d+)%\), ([\d,]+) bars/s, "
                       r"(ETA \d+:\d\d|done in \d+:\d\d); chunk (\d+), (up to \S+|no bars)",
                       text)
    assert len(lines) >= 2, text
    assert [int(c[5]) for c in lines] == list(range(1, len(lines) + 1))  # one a chunk
    done = [int(c[0].replace(",", "")) for c in lines]
    total = int(lines[0][1].replace(",", ""))
    assert done == sorted(done) and done[-1] == total
    assert all(c[4].startswith("ETA") for c in lines[:-1])
    assert lines[-1][2] == "100" and lines[-1][4].startswith("done in")
    last = [c[6] for c in lines if c[6].startswith("up to")]
    assert last == sorted(last) and len(last) == 7  # oldest first; one a session
    assert len(lines) - len(last) >= 1  # Thanksgiving and the weekend: chunks without bars
    assert f"{total:,} bars written" in out.decode()
