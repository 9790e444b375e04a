"""``ibhost bench [--quick]``: every scenario against a tree of its own, one table.

Starts ``ibhost sim`` (pacing windows shrunk a millionfold so that only the bridge is
measured; IB's 50 messages a second still applies) and the supervised tree, then
measures, each against a baseline taken in the same run:

- added latency (p50/p99) of validate, head timestamp, 390 one-minute bars and a
  snapshot at 1, 10 and 100 clients, through connector.sock and through the
  gateway, against a direct ib_async client of the same simulator;
- bars per second for a long 1-minute download (JSON and CSV through the gateway)
  against the same chunks fetched directly with ib_async;
- the RSS of every program at ready and after the bar run;
- recovery: simulator restart, a frozen gateway, kill -9 of the connector, a wake;
- IB messages a second and violations with 100 clients pressing;
- start-up against a bare interpreter.

The table is printed and written as JSON and Markdown (with the machine it ran
on) under ``bench/results/`` (or ``--out``). Figures are reported, not asserted.
Progress goes to stderr, scenario by scenario: a bar on a terminal, a line as each
begins and ends otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from ibhost import tree
from ibhost.connector.client import ConnectorClient
from ibhost.ipc.client import UnixClient
from ibhost.proc import rss_mib
from ibhost.progress import Progress

PY = [sys.executable, "-m", "ibhost.cli"]
KEY = "bench-key-0123456789abcdef"
SYMBOLS = ["AAPL", "MSFT", "AMZN", "TSLA", "NVDA", "SPY", "QQQ"]
SIM_START = "2025-11-20T15:00"
SIM_SEED = 0  # the price paths (the simulator's default); bench/peers.py gives it to each sim
# full NYSE sessions before the simulated now (no holidays or half days in between)
DAYS = [dt.date(2025, 10, 1) + dt.timedelta(days=i) for i in range(50)]
WEEKDAYS = [d for d in DAYS if d.weekday() < 5]
SCALE = "0.000001"  # IB's historical pacing windows, shrunk: only the bridge is measured


DIRECT_INTERVAL = 1.1
# one client: a request every 50 ms, 40 messages a second even for the requests the
# library follows with a cancel (head timestamps), under IB's 50 and every throttle
ONE_CLIENT_GAP = 0.05


def direct_ib() -> Any:
    """The direct ib_async client the paths are measured against. Its own throttle, 45
    requests in any 1 s, is tight to the second: when one burst reaches IB late and the
    next on time, IB counts over 50 in a second and disconnects it (error 100; the
    simulator judges on arrival as IB does). 45 in any 1.1 s holds, so the baseline
    stays connected at 10 and 100 clients."""
    from ib_async import IB

    ib = IB()
    ib.client.RequestsInterval = DIRECT_INTERVAL
    return ib



def pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    s = sorted(samples)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {"host": platform.node(), "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "cpus": os.cpu_count(), "cpu": cpu,
            "memory_gib": mem}


class Bench:
    def __init__(self, quick: bool) -> None:
        import logging

        logging.getLogger("ib_async").setLevel(logging.CRITICAL)
        self.quick = quick
        self.home = Path(tempfile.mkdtemp(prefix="ibb-"))
        self.sim: asyncio.subprocess.Process | None = None
        self.sup: asyncio.subprocess.Process | None = None
        self.sim_port = 0
        self.url = ""
        self.http: aiohttp.ClientSession | None = None
        self.connector: ConnectorClient | None = None
        self.simctl: UnixClient | None = None
        self.results: dict[str, Any] = {"quick": quick, "machine": machine(),
                                        "direct_interval_s": DIRECT_INTERVAL,
                                        "started": dt.datetime.now(dt.UTC).isoformat()}

    # --- the tree --------------------------------------------------------------------

    async def start(self) -> None:
        tree.prepare_home(self.home)
        sock = self.home / "run" / "sim.sock"
        self.sim = await asyncio.create_subprocess_exec(
            *PY, "sim", "--port", "0", "--pacing-scale", SCALE, "--control", str(sock),
            "--log-level", "WARNING", "--start-time", SIM_START, "--seed", str(SIM_SEED),
            stdout=asyncio.subprocess.PIPE, start_new_session=True)
        assert self.sim.stdout is not None
        line = (await self.sim.stdout.readline()).decode()
        self.sim_port = int(re.search(r":(\d+)", line).group(1))  # type: ignore[union-attr]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            http_port = s.getsockname()[1]
        (self.home / "ibhost.toml").write_text(f"""
[ib]
port = {self.sim_port}
settle_delay = 0.2
[pacing]
scale = {SCALE}
[gateway]
port = {http_port}
api_key = "{KEY}"
log_level = "WARNING"
max_connections_per_client = 2048
[connector]
log_level = "WARNING"
[trading]
enabled = true
[streams]
max_consumers_per_key = 2000
[watchdog]
region = "none"
""")
        self.url = f"http://127.0.0.1:{http_port}"
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600),
                                          headers={"X-API-Key": KEY})
        self.connector = ConnectorClient(str(self.home / "run" / "connector.sock"),
                                         read_timeout=600)
        self.simctl = UnixClient(str(sock))
        t0 = time.monotonic()
        self.sup = await tree.start_supervisord(self.home)
        await self.wait_health("ok", 60)
        self.results["startup"] = {"tree_to_ok_s": round(time.monotonic() - t0, 2)}

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        for c in (self.connector, self.simctl):
            if c is not None:
                await c.close()
        if self.sup is not None:
            await tree.stop_supervisord(self.sup)
        if self.sim is not None and self.sim.returncode is None:
            self.sim.send_signal(signal.SIGTERM)
            await self.sim.wait()
        shutil.rmtree(self.home, ignore_errors=True)

    async def health(self) -> str:
        assert self.http is not None
        try:
            async with self.http.get(self.url + "/v1/health?connect=true") as r:
                return str((await r.json())["status"])
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError):
            return "unreachable"

    async def wait_health(self, want: str, timeout: float, *, negate: bool = False) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if (await self.health() == want) != negate:
                return time.monotonic() - t0
            await asyncio.sleep(0.05)
        return float("nan")

    def rss(self) -> dict[str, float]:
        out = {"supervisord": rss_mib(self.sup.pid) if self.sup else float("nan")}
        for p in tree.Supervisor(self.home).processes():
            out[p["name"]] = rss_mib(p["pid"]) if p["pid"] else float("nan")
        out["tree"] = round(sum(v for v in out.values() if v == v), 1)
        return {k: round(v, 1) for k, v in out.items()}

    async def sim_fault(self, name: str, **params: Any) -> None:
        assert self.simctl is not None
        await self.simctl.request("POST", f"/faults/{name}", json_body=params)

    async def sim_state(self) -> dict[str, Any]:
        assert self.simctl is not None
        state: dict[str, Any] = await self.simctl.request("GET", "/state")
        return state

    # --- scenarios -------------------------------------------------------------------

    async def latency(self) -> None:
        from ib_async import Stock

        assert self.http is not None and self.connector is not None
        ib = direct_ib()
        await ib.connectAsync("127.0.0.1", self.sim_port, clientId=90)
        contracts = {s: c for s, c in zip(SYMBOLS, await ib.qualifyContractsAsync(
            *(Stock(s, "SMART", "USD") for s in SYMBOLS)), strict=True)}
        http, con = self.http, self.connector
        counter = iter(range(10**9))
        client_ids = iter(range(100, 200))

        def pick() -> tuple[str, dt.date]:
            i = next(counter)
            return SYMBOLS[i % len(SYMBOLS)], WEEKDAYS[(i // len(SYMBOLS)) % len(WEEKDAYS)]

        def ib_end(d: dt.date) -> str:
            return f"{d:%Y%m%d} 16:00:00 US/Eastern"

        def iso_end(d: dt.date) -> str:
            return f"{d.isoformat()}T21:00:00Z"

        async def gw(path: str, body: dict[str, Any] | None = None,
                     params: dict[str, str] | None = None) -> Any:
            if body is None:
                async with http.get(self.url + path, params=params) as r:
                    assert r.status == 200, await r.text()
                    return await r.read()
            async with http.post(self.url + path, json=body) as r:
                assert r.status == 200, await r.text()
                return await r.read()

        async def d_validate() -> Any:
            s, _ = pick()
            return await ib.reqContractDetailsAsync(Stock(s, "SMART", "USD"))

        async def c_validate() -> Any:
            s, _ = pick()
            return await con.validate({"symbol": s})

        async def g_validate() -> Any:
            s, _ = pick()
            return await gw("/v1/data/validate", {"symbol": s})

        async def d_head() -> Any:
            s, _ = pick()
            return await ib.reqHeadTimeStampAsync(contracts[s], "TRADES", True, 2)

        async def c_head() -> Any:
            s, _ = pick()
            return await con.head_timestamp({"symbol": s})

        async def g_head() -> Any:
            s, _ = pick()
            return await gw("/v1/data/head-timestamp", params={"symbol": s})

        async def d_bars() -> Any:
            s, d = pick()
            bars = await ib.reqHistoricalDataAsync(contracts[s], ib_end(d), "1 D", "1 min",
                                                   "TRADES", True, 2)
            assert len(bars) == 390
            return bars

        async def c_bars() -> Any:
            s, d = pick()
            return await con.historical({
                "symbol": s, "barSize": "1 min", "duration": "1 D", "end": iso_end(d)})

        async def g_bars() -> Any:
            s, d = pick()
            return await gw("/v1/data/historical", {"symbol": s, "barSize": "1 min",
                                                    "duration": "1 D", "end": iso_end(d)})

        async def d_snap() -> Any:
            s, _ = pick()
            return await ib.reqTickersAsync(contracts[s])

        async def c_snap() -> Any:
            s, _ = pick()
            return await con.snapshot({"symbol": s})

        async def g_snap() -> Any:
            s, _ = pick()
            return await gw("/v1/market/snapshot", {"symbol": s})

        ops: dict[str, dict[str, Callable[[], Awaitable[Any]]]] = {
            "validate": {"direct": d_validate, "connector": c_validate, "gateway": g_validate},
            "head_timestamp": {"direct": d_head, "connector": c_head, "gateway": g_head},
            "bars_390": {"direct": d_bars, "connector": c_bars, "gateway": g_bars},
            "snapshot": {"direct": d_snap, "connector": c_snap, "gateway": g_snap}}
        levels = [1, 10] if self.quick else [1, 10, 100]
        per_client = {1: 15 if self.quick else 100, 10: 3 if self.quick else 8, 100: 2}
        table: dict[str, Any] = {}
        for op, paths in ops.items():
            for n in levels:
                row: dict[str, Any] = {}
                for path, fn in paths.items():
                    if path == "direct" and not ib.isConnected():
                        # IB dropped it (error 100) on an earlier level: a fresh client
                        ib = direct_ib()
                        await ib.connectAsync("127.0.0.1", self.sim_port,
                                              clientId=next(client_ids))
                    # warm every symbol on this path first: the simulator computes a
                    # symbol's data on first use (a direct first call took 0.4 s)
                    for _ in range(len(SYMBOLS)):
                        await fn()
                    if n == 1:  # the warm-up's messages leave ib_async's 45/s window:
                        await asyncio.sleep(DIRECT_INTERVAL + 0.1)  # timed, not throttled
                    samples: list[float] = []

                    async def client(f: Callable[[], Awaitable[Any]] = fn,
                                     out: list[float] = samples, k: int = n) -> None:
                        for _ in range(per_client[k]):
                            t0 = time.perf_counter()
                            await f()
                            out.append(time.perf_counter() - t0)
                            if k == 1:
                                await asyncio.sleep(ONE_CLIENT_GAP)

                    try:
                        await asyncio.gather(*(client() for _ in range(n)))
                    except ConnectionError:  # IB drops a client over 50 messages/s
                        errors = (await self.sim_state())["stats"]["errors_sent"]
                        row[path] = {"error": "direct ib_async was disconnected by the "
                                     f"simulator (error 100 seen {errors.get('100', 0)}x: "
                                     "over 50 messages/s)", "n": len(samples)}
                        continue
                    row[path] = {"p50_ms": round(pct(samples, 0.5) * 1000, 2),
                                 "p99_ms": round(pct(samples, 0.99) * 1000, 2),
                                 "n": len(samples)}
                for path in ("connector", "gateway"):
                    for q in ("p50", "p99"):
                        base = row["direct"].get(f"{q}_ms")
                        row[path][f"added_{q}_ms"] = None if base is None else round(
                            row[path][f"{q}_ms"] - base, 2)
                table[f"{op}@{n}"] = row
        ib.disconnect()
        self.results["latency"] = table

    async def bars(self) -> None:
        from ib_async import Stock

        assert self.http is not None
        days = 22 if self.quick else 365
        end = dt.datetime(2025, 11, 20, tzinfo=dt.UTC)
        start = end - dt.timedelta(days=days)
        out: dict[str, Any] = {"days": days}
        ib = direct_ib()
        await ib.connectAsync("127.0.0.1", self.sim_port, clientId=91)
        [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        sem = asyncio.Semaphore(8)  # as many open at once as the gateway's window allows

        async def chunk(t: dt.datetime) -> int:
            async with sem:
                bars = await ib.reqHistoricalDataAsync(
                    c, t.strftime("%Y%m%d-%H:%M:%S"), "86400 S", "1 min", "TRADES", False, 2)
                return len(bars)

        t0 = time.perf_counter()
        ends = [end - dt.timedelta(days=i) for i in range(days)]
        n = sum(await asyncio.gather(*(chunk(t) for t in ends)))
        took = time.perf_counter() - t0
        out["direct"] = {"bars": n, "seconds": round(took, 2), "bars_per_s": round(n / took)}
        ib.disconnect()
        body = {"symbol": "AAPL", "barSize": "1 min", "useRTH": False,
                "start": start.isoformat(), "end": end.isoformat()}
        for fmt in ("json", "csv"):
            await asyncio.sleep(0.2)  # other requests' identical-request cache expires
            t0 = time.perf_counter()
            async with self.http.post(self.url + f"/v1/data/historical?format={fmt}",
                                      json=body) as r:
                data = await r.read()
            took = time.perf_counter() - t0
            count = (json.loads(data)["count"] if fmt == "json"
                     else data.count(b"\n") - 1)
            out[fmt] = {"bars": count, "seconds": round(took, 2),
                        "bars_per_s": round(count / took), "bytes": len(data),
                        "vs_direct": round((count / took) / out["direct"]["bars_per_s"], 2)}
            del data
        self.results["bars"] = out

    async def message_rate(self) -> None:
        assert self.connector is not None
        con = self.connector
        before_state = await self.sim_state()
        before = sum(before_state["stats"]["requests"].values())
        seconds = 3.0 if self.quick else 6.0
        stop = time.monotonic() + seconds + 1.0

        async def caller(i: int) -> None:
            while time.monotonic() < stop:
                # maxAge=0: past the contract cache, so every call is a message to IB
                await con.validate({"symbol": SYMBOLS[i % len(SYMBOLS)]},
                                   params={"maxAge": "0"})

        async def measure() -> float:
            await asyncio.sleep(1.0)  # every caller waiting
            s0 = sum((await self.sim_state())["stats"]["requests"].values())
            t0 = time.monotonic()
            await asyncio.sleep(seconds)
            s1 = sum((await self.sim_state())["stats"]["requests"].values())
            return (s1 - s0) / (time.monotonic() - t0)

        rate, *_ = await asyncio.gather(measure(), *(caller(i) for i in range(100)))
        after = await self.sim_state()
        self.results["message_rate"] = {
            "clients": 100, "messages_per_s": round(rate, 1), "ib_limit_per_s": 50,
            "use_of_limit": round(rate / 50, 3),
            "violations": len(after["stats"]["violations"]) -
            len(before_state["stats"]["violations"]),
            "messages": sum(after["stats"]["requests"].values()) - before}

    async def fanout(self) -> None:
        """Live quotes to 1, 100 and 1,000 WebSocket consumers (bench/fanout.py, a
        process of its own) against a direct ib_async ticker on the same simulator:
        the added latency per quote, updates/s delivered, gateway memory per
        consumer."""
        from ib_async import Stock

        ib = direct_ib()
        await ib.connectAsync("127.0.0.1", self.sim_port, clientId=91)
        [contract] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        direct: dict[str, float] = {}

        def num(x: Any) -> float | None:
            return None if x is None or x != x else float(x)

        def seen(tickers: Any) -> None:  # each quote, named as bench/fanout.py names it
            now = time.time()
            for t in tickers:
                k = json.dumps([num(t.bid), num(t.ask), num(t.last), num(t.bidSize),
                                num(t.askSize), num(t.volume)])
                direct.setdefault(k, now)

        ib.pendingTickersEvent += seen
        ib.reqMktData(contract, "", False, False)
        seconds = 4.0 if self.quick else 30.0
        out: dict[str, Any] = {}
        script = str(Path(__file__).with_name("fanout.py"))
        try:
            for n in (1, 100, 1000):
                before = self.rss()["gateway"]
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, script, self.url, KEY, str(n), str(seconds), "AAPL",
                    stdout=asyncio.subprocess.PIPE, limit=1 << 26)
                assert proc.stdout is not None
                await asyncio.wait_for(proc.stdout.readline(), 180)  # all subscribed
                held = self.rss()["gateway"]
                raw = await asyncio.wait_for(proc.stdout.readline(), seconds + 120)
                await proc.wait()
                res = json.loads(raw)
                added = [(t - direct[k]) * 1000 for k, ts in res["arrivals"].items()
                         if k in direct for t in ts]
                delivered = sum(len(ts) for ts in res["arrivals"].values())
                out[str(n)] = {
                    "consumers": n, "connect_s": res["connect_s"],
                    "added_p50_ms": round(pct(added, 0.5), 2),
                    "added_p99_ms": round(pct(added, 0.99), 2),
                    "quotes_delivered_per_s": round(delivered / seconds, 1),
                    "frames": res["frames"], "samples": len(added),
                    "unmatched": sum(len(ts) for k, ts in res["arrivals"].items()
                                     if k not in direct),
                    "gateway_kib_per_consumer": (round((held - before) * 1024 / n, 1)
                                                 if n >= 100 else None)}
                await asyncio.sleep(1.0)  # the last consumers' connections close
        finally:
            ib.disconnect()
        out["direct_quotes_per_s"] = round(len(direct) / max(1.0, seconds * 3), 2)
        self.results["fanout"] = out

    async def recovery(self) -> None:
        out: dict[str, Any] = {}
        await self.sim_fault("restart", downtime=0)
        t0 = time.monotonic()
        await self.wait_health("ok", 1, negate=True)
        out["sim_restart_to_ok_s"] = round(time.monotonic() - t0 +
                                           await self.wait_health("ok", 60), 2)
        # a frozen gateway with a request outstanding: noticed, then back after thaw
        assert self.connector is not None
        await self.sim_fault("freeze")
        t0 = time.monotonic()
        pending = asyncio.ensure_future(self.connector.validate({"symbol": "IBM"}))
        out["freeze_detected_s"] = round(await self.wait_health("ok", 30, negate=True), 2)
        with contextlib.suppress(Exception):
            await pending
        out["freeze_request_answered_s"] = round(time.monotonic() - t0, 2)
        await self.sim_fault("thaw")
        out["thaw_to_ok_s"] = round(await self.wait_health("ok", 60), 2)
        pid = tree.Supervisor(self.home).process("ibhost:connector")["pid"]
        os.kill(pid, signal.SIGKILL)  # the connector this run started
        t0 = time.monotonic()
        await self.wait_health("ok", 5, negate=True)
        out["connector_kill9_to_ok_s"] = round(time.monotonic() - t0 +
                                               await self.wait_health("ok", 60), 2)
        t0 = time.monotonic()
        wake = await asyncio.create_subprocess_exec(
            *PY, "ctl", "--home", str(self.home), "wake", stdout=asyncio.subprocess.DEVNULL)
        await wake.wait()
        await self.wait_health("ok", 2, negate=True)
        out["wake_to_ok_s"] = round(time.monotonic() - t0 + await self.wait_health("ok", 60),
                                    2)
        self.results["recovery"] = out

    async def http_hop(self) -> None:
        """What one HTTP round trip to a do-nothing aiohttp server (uvloop, as the
        gateway runs) costs this machine, spaced as the one-client latency rows and back
        to back: the floor under each hop the gateway path adds to a direct call."""
        assert self.http is not None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOP_SERVER, str(port), stdout=asyncio.subprocess.PIPE,
            start_new_session=True)
        try:
            assert server.stdout is not None
            await asyncio.wait_for(server.stdout.readline(), 30)
            url = f"http://127.0.0.1:{port}/noop"
            out: dict[str, Any] = {}
            for name, gap in (("spaced", ONE_CLIENT_GAP), ("back_to_back", 0.0)):
                samples = []
                for i in range(20 + (60 if self.quick else 300)):
                    t0 = time.perf_counter()
                    async with self.http.get(url) as r:
                        await r.read()
                    if i >= 20:  # warmed
                        samples.append(time.perf_counter() - t0)
                    if gap:
                        await asyncio.sleep(gap)
                out[f"{name}_p50_ms"] = round(pct(samples, 0.5) * 1000, 2)
                out[f"{name}_p99_ms"] = round(pct(samples, 0.99) * 1000, 2)
            self.results["http_hop"] = out
        finally:
            server.send_signal(signal.SIGTERM)
            await server.wait()

    @staticmethod
    def startup_into(results: dict[str, Any]) -> None:
        def best(cmd: list[str], n: int = 3) -> float:
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                subprocess.run(cmd, capture_output=True, check=False, timeout=60)
                times.append(time.perf_counter() - t0)
            return min(times)

        bare = best([sys.executable, "-c", "pass"])
        out = results["startup"]
        out["bare_interpreter_ms"] = round(bare * 1000, 1)
        for name, mod in (("cli", "ibhost.cli"), ("gateway", "ibhost.gateway.main"),
                          ("connector", "ibhost.connector.main"),
                          ("watchdog", "ibhost.watchdog.main")):
            t = best([sys.executable, "-c", f"import {mod}"])
            out[f"import_{name}_ms"] = round(t * 1000, 1)
            out[f"import_{name}_vs_bare"] = round(t / bare, 1)


HOP_SERVER = """
import sys, uvloop
from aiohttp import web
async def noop(request): return web.json_response({})
async def main():
    app = web.Application()
    app.router.add_get("/noop", noop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(sys.argv[1])).start()
    print("ready", flush=True)
    await __import__("asyncio").Event().wait()
uvloop.run(main())
"""


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [f"# ibhost bench{' --quick' if r['quick'] else ''}", "",
             f"{r['started']} on {m['host']}: {m['cpu']} ({m['cpus']} CPUs, "
             f"{m['memory_gib']} GiB), {m['system']}, Python {m['python']}.", "",
             "## Added latency vs direct ib_async (same simulator, same run)", "",
             "| request @ clients | direct p50 / p99 ms | connector.sock added p50 / p99 ms "
             "| gateway added p50 / p99 ms |", "|---|---|---|---|"]
    lines[-2:-2] = [f"Direct: one ib_async client, its throttle set to 45 requests per "
                    f"{r.get('direct_interval_s', DIRECT_INTERVAL)} s (its default, 45 per "
                    "1 s, gets it disconnected by IB's 50 messages/s at 10 clients). One "
                    f"client sends a request every {ONE_CLIENT_GAP * 1000:.0f} ms; 10 and 100 "
                    "clients send back to "
                    "back, so those rows mostly show queueing at IB's message rate.", ""]
    def added(x: dict[str, Any]) -> str:
        if x.get("added_p50_ms") is None:
            return f"({x['p50_ms']} / {x['p99_ms']} in all)"
        return f"{x['added_p50_ms']:+} / {x['added_p99_ms']:+}"

    for name, row in r.get("latency", {}).items():
        d, c, g = row["direct"], row["connector"], row["gateway"]
        base = d["error"] if "error" in d else f"{d['p50_ms']} / {d['p99_ms']}"
        lines.append(f"| {name} | {base} | {added(c)} | {added(g)} |")
    hop = r.get("http_hop")
    if hop:
        lines += ["", "One HTTP round trip to a do-nothing aiohttp server, the floor under "
                  "each hop the gateway path adds (two: client to gateway, gateway to "
                  f"connector): spaced {ONE_CLIENT_GAP * 1000:.0f} ms as above, p50 / p99 "
                  f"{hop['spaced_p50_ms']} / {hop['spaced_p99_ms']} ms; back to "
                  f"back {hop['back_to_back_p50_ms']} / {hop['back_to_back_p99_ms']} ms."]
    b = r.get("bars")
    if b:
        lines += ["", f"## Bars/s, {b['days']} days of 1-minute bars", "",
                  "| path | bars | seconds | bars/s | vs direct |", "|---|---|---|---|---|",
                  f"| direct ib_async (8 chunks open) | {b['direct']['bars']} | "
                  f"{b['direct']['seconds']} | {b['direct']['bars_per_s']} | 1.00 |"]
        for fmt in ("json", "csv"):
            x = b[fmt]
            lines.append(f"| gateway {fmt} | {x['bars']} | {x['seconds']} | "
                         f"{x['bars_per_s']} | {x['vs_direct']:.2f} |")
    f = r.get("fanout")
    if f:
        lines += ["", "## Live quotes fanned out (WebSocket) vs a direct ib_async ticker",
                  "", "Each quote's arrival at every consumer minus its arrival at a "
                  "direct ib_async client of the same simulator (wall clock, consumers in "
                  "a process of their own).", "",
                  "| consumers | added p50 / p99 ms | quotes delivered/s | connect s "
                  "| gateway KiB per consumer |", "|---|---|---|---|---|"]
        for n in ("1", "100", "1000"):
            x = f.get(n)
            if x:
                lines.append(f"| {n} | {x['added_p50_ms']:+} / {x['added_p99_ms']:+} | "
                             f"{x['quotes_delivered_per_s']} | {x['connect_s']} | "
                             f"{x['gateway_kib_per_consumer'] or '-'} |")
    for title, key in (("RSS (MiB) at ready", "rss_ready"),
                       ("RSS (MiB) right after the bar run", "rss_right_after_bars"),
                       ("RSS (MiB) 3 s after the bar run", "rss_after_bars"),
                       ("Recovery", "recovery"), ("Message rate, 100 clients", "message_rate"),
                       ("Start-up", "startup")):
        if key in r:
            lines += ["", f"## {title}", "", "| | |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in r[key].items()]
    return "\n".join(lines) + "\n"


# what ``ibhost bench`` reports progress by: each scenario when it begins and ends
SCENARIOS = ("start the simulator and the tree", "latency", "bars", "message rate",
             "fan-out", "recovery", "start-up")


def progress() -> Progress:
    """A bar on a terminal, a line per scenario otherwise; on stderr, so that stdout
    carries the table alone."""
    return Progress(len(SCENARIOS), unit="scenario", desc="ibhost bench", rate=False,
                    tty=sys.stderr.isatty(),
                    emit=lambda text: print(text, file=sys.stderr, flush=True))


@contextlib.contextmanager
def scenario(steps: Progress, name: str) -> Iterator[None]:
    steps.begin(name)
    t0 = time.monotonic()
    yield
    steps.update(1, f"{name} took {time.monotonic() - t0:.1f}s")


async def run(quick: bool, steps: Progress) -> dict[str, Any]:
    b = Bench(quick)
    try:
        with scenario(steps, SCENARIOS[0]):
            await b.start()
            b.results["rss_ready"] = b.rss()
        with scenario(steps, "latency"):
            await b.latency()
            await b.http_hop()
        with scenario(steps, "bars"):
            await b.bars()
            b.results["rss_right_after_bars"] = b.rss()
            await asyncio.sleep(3.0)  # the connector hands a large answer's heap back
            b.results["rss_after_bars"] = b.rss()
        with scenario(steps, "message rate"):
            await b.message_rate()
        with scenario(steps, "fan-out"):
            await b.fanout()
        with scenario(steps, "recovery"):
            await b.recovery()
    finally:
        await b.stop()
    return b.results


def write(r: dict[str, Any], quick: bool, out_dir: Path) -> None:
    r["finished"] = dt.datetime.now(dt.UTC).isoformat()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "quick" if quick else "full"
    (out_dir / f"{stem}.json").write_text(json.dumps(r, indent=2) + "\n")
    md = markdown(r)
    (out_dir / f"{stem}.md").write_text(md)
    print(md)
    print(f"written: {out_dir / (stem + '.json')}, {out_dir / (stem + '.md')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ibhost bench")
    ap.add_argument("--quick", action="store_true", help="fewer rounds (under 2 minutes)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"),
                    help="directory for the JSON and Markdown results")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    steps = progress()
    try:
        b_results = asyncio.run(run(args.quick, steps))
        with scenario(steps, "start-up"):
            Bench.startup_into(b_results)
    finally:
        steps.close()
    write(b_results, args.quick, Path(args.out))
    print(f"ibhost bench took {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
