"""One day of 1-minute bars at N concurrent clients, through the KTRDR path
(``POST /data/historical``) and v1 (``POST /v1/data/historical``), same stack, same run,
against the same requests sent straight to the simulator by one ib_async client (and
v1's connector call sent straight to connector.sock).

    PYTHONPATH=daemon python3 bench/bench_ktrdr.py [--clients 10] [--rounds 6]

An in-process stack (simulator, connector, gateway in one event loop; the
simulator's pacing windows shrunk so that only ibhost is measured). Each
request asks for another day or symbol, so no answer comes from a cache; each
path is warmed with one request per symbol first (the KTRDR path's symbol
classification included). Prints p50/p99 per path, the latency each path adds to
the direct client's (as ``ibhost bench`` reports it), the ratio to v1, and the
connector calls each path made.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ibhost import config
from ibhost.connector.client import ConnectorClient
from ibhost.connector.main import Connector
from ibhost.connector.session import State
from ibhost.gateway.app import init_app
from ibhost.sim import Simulator

SYMBOLS = ["AAPL", "MSFT", "AMZN", "TSLA", "NVDA", "SPY", "QQQ"]
KEY = "bench-key-0123456789abcdef"
START = dt.datetime(2025, 11, 20, 15, 0, tzinfo=dt.UTC)
DAYS = [d for d in (dt.date(2025, 9, 1) + dt.timedelta(days=i) for i in range(75))
        if d.weekday() < 5 and d not in (dt.date(2025, 9, 1), dt.date(2025, 11, 27))]


def counted(fn: Any, name: str, calls: Counter[str]) -> Any:
    async def wrapper(*a: Any, **kw: Any) -> Any:
        calls[name] += 1
        return await fn(*a, **kw)

    return wrapper


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def run(clients: int, rounds: int, gap: float, interleave: bool) -> int:
    sim = Simulator("127.0.0.1", 0, seed=7, pacing_scale=1e-6, start_time=START)
    await sim.start()
    home = Path(tempfile.mkdtemp(prefix="ibhost-bench-ktrdr-"))
    cfg = config.load(home=home, env={}, overrides={
        "ib.port": sim.port, "pacing.scale": 1e-6, "ib.settle_delay": 0.1,
        "gateway.api_key": KEY})  # a caller with a key: not held to the keyless share
    con = Connector(cfg)
    await con.start()
    await con.session.wait_state(State.READY, timeout=15)
    runner = web.AppRunner(init_app(cfg))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}"
    calls: Counter[str] = Counter()
    svc = con.service
    for obj, name in ((svc, "validate"), (svc, "details"), (svc.history, "historical"),
                      (svc.history, "encoded")):
        setattr(obj, name, counted(getattr(obj, name), name, calls))
    work = iter(range(10**9))

    def pick() -> tuple[str, dt.date]:
        i = next(work)
        return SYMBOLS[i % len(SYMBOLS)], DAYS[(i // len(SYMBOLS)) % len(DAYS)]

    def ktrdr(s: str, d: dt.date) -> tuple[str, dict[str, Any]]:
        # as KTRDR's provider asks for a day: midnight to midnight, end inclusive
        return "/data/historical", {"symbol": s, "timeframe": "1m",
                                    "start": f"{d}T00:00:00Z",
                                    "end": f"{d + dt.timedelta(days=1)}T00:00:00Z"}

    from ib_async import IB, Stock

    ib = IB()
    ib.client.RequestsInterval = 1.1  # 45 in any 1.1 s: never over IB's 50 a second
    await ib.connectAsync("127.0.0.1", sim.port, clientId=90)
    contracts = {s: c for s, c in zip(SYMBOLS, await ib.qualifyContractsAsync(
        *(Stock(s, "SMART", "USD") for s in SYMBOLS)), strict=True)}

    def direct(s: str, d: dt.date) -> tuple[str, dict[str, Any]]:
        # the one IB request the KTRDR path makes for a day (no bar starts at midnight)
        return "", {"symbol": s, "end": f"{d + dt.timedelta(days=1):%Y%m%d}-00:00:00"}

    sock = ConnectorClient(con.socket_path)

    def connector(s: str, d: dt.date) -> tuple[str, dict[str, Any]]:
        # v1's connector call, straight to connector.sock: what the gateway adds is
        # the gateway path's figure minus this one
        return "sock", {"symbol": s, "barSize": "1 min", "start": f"{d}T13:30:00Z",
                        "end": f"{d}T20:00:00Z", "columns": True}

    def v1(s: str, d: dt.date) -> tuple[str, dict[str, Any]]:
        return "/v1/data/historical", {"symbol": s, "barSize": "1 min",
                                       "start": f"{d}T13:30:00Z", "end": f"{d}T20:00:00Z"}

    results: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession(headers={"X-API-Key": KEY}) as http:
        async def one(build: Any) -> float:
            path, body = build(*pick())
            t0 = time.perf_counter()
            if not path:
                bars = await ib.reqHistoricalDataAsync(
                    contracts[body["symbol"]], body["end"], "1 D", "1 min", "TRADES",
                    True, 2)
                assert len(bars) == 390, len(bars)
                return time.perf_counter() - t0
            if path == "sock":
                await sock.historical_bytes(body)
                return time.perf_counter() - t0
            async with http.post(url + path, json=body) as r:
                raw = await r.read()
                assert r.status == 200, raw[:300]
                assert b'"success": false' not in raw and b'"success":false' not in raw, \
                    raw[:300]
            return time.perf_counter() - t0

        async def warm(build: Any) -> None:
            if build is not ktrdr:  # the simulator computes a symbol's data once
                for _ in SYMBOLS:
                    await one(build)
                # the warm-up's messages leave ib_async's throttle window (and the
                # connector's spacing) before the timed requests
                await asyncio.sleep(1.2)
            # the KTRDR path starts cold, as it does after each hour
            calls.clear()

        async def timed(paths: dict[str, Any]) -> dict[str, list[float]]:
            """Each client sends ``rounds`` requests on every path, the paths taken in
            turn (one path at a time unless ``interleave``)."""
            samples: dict[str, list[float]] = {name: [] for name in paths}

            async def client(k: int) -> None:
                for i in range(rounds * len(paths)):
                    name = list(paths)[(k + i) % len(paths)]
                    samples[name].append(await one(paths[name]))
                    if gap:
                        await asyncio.sleep(gap)

            await asyncio.gather(*(client(k) for k in range(clients)))
            return samples

        def keep(name: str, samples: list[float]) -> None:
            results[name] = {"p50": pct(samples, 0.5), "p99": pct(samples, 0.99),
                             "n": len(samples), "calls": dict(calls)}

        paths = {"direct": direct, "connector": connector, "v1": v1, "ktrdr": ktrdr}
        if interleave:  # the paths share the machine's moments: load elsewhere hits all
            for build in paths.values():
                await warm(build)
            for name, samples in (await timed(paths)).items():
                keep(name, samples)
        else:
            for name, build in (*paths.items(), ("v1 again", v1)):
                await warm(build)
                keep(name, (await timed({name: build}))[name])
    ib.disconnect()
    await sock.close()
    base, d = results["v1"], results["direct"]
    print(f"one day of 1-minute bars (390), {clients} clients x {rounds} requests"
          + (f", {gap * 1000:.0f} ms apart" if gap else ", back to back")
          + (", the paths interleaved (connector calls: all paths')" if interleave else ""))
    for name, r in results.items():
        added = "" if r is d else (
            f"added p50 {(r['p50'] - d['p50']) * 1000:+7.1f} ms  "
            f"p99 {(r['p99'] - d['p99']) * 1000:+7.1f} ms  ")
        print(f"{name:9} p50 {r['p50'] * 1000:8.1f} ms  p99 {r['p99'] * 1000:8.1f} ms  "
              f"{added}(x{r['p50'] / base['p50']:.2f} / x{r['p99'] / base['p99']:.2f} of v1)"
              f"  n={r['n']}  connector calls {r['calls']}")
    st = con.scheduler.stats
    print(f"pacing: granted {st.granted}, delayed by rule {st.delayed}, open limit "
          f"{con.scheduler.open.limit:.1f}")
    await runner.cleanup()
    await con.stop()
    await sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--gap", type=float, default=None,
                   help="seconds between one client's requests (default: 0.05 for one "
                        "client, as ibhost bench spaces it, so that the connector's "
                        "request spacing is not measured; 0 for more)")
    p.add_argument("--interleave", action="store_true",
                   help="take the paths in turn in one run rather than one after the other, "
                        "so that load from elsewhere falls on all of them alike")
    a = p.parse_args(argv)
    gap = a.gap if a.gap is not None else (0.05 if a.clients == 1 else 0.0)
    return asyncio.run(run(a.clients, a.rounds, gap, a.interleave))


if __name__ == "__main__":
    sys.exit(main())
