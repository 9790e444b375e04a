"""A one-year 1-minute backfill of one symbol through the gateway, against the least
time the simulator's model of IB allows for it, in the same run; and the latency
of a small request during the backfill against idle.

    python bench/bench_backfill.py [--scale 0.1] [--rounds 10]

Starts ``ibhost sim`` (IB's limits as documented: hard rules for bars <= 30 s, a
soft throttle of 5 requests/s after a burst of 10 for larger bars, times x
``--scale``), the connector and the gateway as processes. The backfill is the
gateway's streamed CSV; the lower bound is the throttle's: (requests - burst) /
rate + one answer's service time. ``--scale 1`` is IB's own times (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "daemon"))
from ibhost.connector.client import ConnectorClient
from ibhost.ipc.client import UnixClient
from ibhost.sim.pacing import SoftThrottle

PY = [sys.executable, "-m", "ibhost.cli"]


async def small(http: aiohttp.ClientSession, url: str, i: int) -> float:
    """A 3-day daily request for one of ten symbols (distinct: nothing from a cache)."""
    sym = ("MSFT", "AMZN", "SPY", "QQQ", "TSLA", "NVDA", "GOOGL", "META", "IBM", "AAPL")[i % 10]
    t0 = time.perf_counter()
    async with http.post(url + "/v1/data/historical", json={
            "symbol": sym, "barSize": "1 day", "duration": "3 D",
            "end": f"2025-{1 + i // 25:02d}-{2 + i % 25:02d}T21:00:00Z"}) as r:
        assert r.status == 200, await r.text()
        await r.read()
    return time.perf_counter() - t0


async def main(scale: float, rounds: int) -> None:
    home = tempfile.mkdtemp(prefix="ibhost-bench-")
    control = os.path.join(home, "sim.sock")
    sim = await asyncio.create_subprocess_exec(
        *PY, "sim", "--port", "0", "--pacing-scale", str(scale), "--control", control,
        "--log-level", "WARNING", stdout=asyncio.subprocess.PIPE)
    assert sim.stdout is not None
    port = int(re.search(r":(\d+)", (await sim.stdout.readline()).decode()).group(1))  # type: ignore[union-attr]
    con = await asyncio.create_subprocess_exec(
        *PY, "connector", "--home", home, "--port", str(port), "--client-id", "40",
        "--set", f"pacing.scale={scale}", "--set", "connector.log_level=WARNING")
    gw = await asyncio.create_subprocess_exec(
        *PY, "gateway", "--home", home, "--http-port", "0", "--set",
        "gateway.log_level=WARNING", "--set", "gateway.connector_timeout=3600",
        stdout=asyncio.subprocess.PIPE)
    assert gw.stdout is not None
    url = "http://127.0.0.1:" + re.search(  # type: ignore[union-attr]
        r":(\d+)$", (await gw.stdout.readline()).decode().strip()).group(1)
    client = ConnectorClient(os.path.join(home, "run", "connector.sock"))
    ctl = UnixClient(control)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600))
    try:
        for _ in range(400):
            try:
                if (await client.health())["status"] == "ok":
                    break
            except Exception:
                pass
            await asyncio.sleep(0.05)
        idle = [await small(http, url, i) for i in range(rounds)]
        await asyncio.sleep(2.0 * scale * 10)  # let the throttle's bucket refill

        async def backfill() -> tuple[float, int, int]:
            t0 = time.perf_counter()
            async with http.post(url + "/v1/data/historical?format=csv", json={
                    "symbol": "AAPL", "barSize": "1 min", "start": "2024-11-01T00:00:00Z",
                    "end": "2025-11-01T00:00:00Z"}) as r:
                assert r.status == 200, await r.text()
                requests = int(r.headers["X-Ibhost-Requests"])
                rows = -1
                async for _line in r.content:
                    rows += 1
            return time.perf_counter() - t0, rows, requests

        job = asyncio.ensure_future(backfill())
        await asyncio.sleep(1.0 * scale * 10)
        busy: list[float] = []
        while not job.done() and len(busy) < rounds:
            busy.append(await small(http, url, 100 + len(busy)))
            await asyncio.sleep(0.2 * scale * 10)
        elapsed, rows, requests = await job
        state: dict[str, Any] = await ctl.request("GET", "/state")
        status = await client.status()
        bound = SoftThrottle(scale).lower_bound(requests, 390)
        print(f"one year of 1-minute AAPL through the gateway (CSV, streamed); simulator "
              f"times x{scale}")
        print(f"  backfill         {elapsed:8.2f} s for {rows:,} bars in {requests} IB "
              f"requests = {rows / elapsed:,.0f} bars/s")
        print(f"  model's bound    {bound:8.2f} s  -> backfill / bound = {elapsed / bound:.2f}x")
        print(f"  violations       {len(state['stats']['violations'])} (pacing 162s answered "
              f"to the connector: {status['pacing']['throttled']})")
        if busy:
            mi, mb = statistics.median(idle), statistics.median(busy)
            print(f"  small request    idle {mi * 1000:7.1f} ms | during backfill "
                  f"{mb * 1000:7.1f} ms = {mb / mi:.2f}x (medians, {len(idle)}/{len(busy)} "
                  "requests)")
        print(f"  open-request window at the end: {status['pacing']['openLimit']}")
    finally:
        await client.close()
        await ctl.close()
        await http.close()
        for p in (gw, con, sim):
            p.send_signal(signal.SIGTERM)
            await p.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.1,
                    help="the simulator's and connector's pacing scale (1 = IB's times)")
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    asyncio.run(main(a.scale, a.rounds))
