"""Benchmark the simulator; every figure is a ratio against a baseline from the same run.

    python bench/bench_sim.py [--rounds N]

- startup: spawn-to-listening of ``ibhost sim`` vs spawn-to-exit of a bare interpreter;
- latency: contract details, a 390-bar and a 1,800-bar historical request, and a
  snapshot, each vs a reqCurrentTime round trip (all through ib_async over TCP);
- memory: the simulator process's RSS after the latency runs vs right after start.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ib_async import IB, Stock

IBHOST = [sys.executable, "-m", "ibhost.cli"]


async def spawn_to_listening() -> tuple[float, asyncio.subprocess.Process, int]:
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *IBHOST, "sim", "--port", "0", "--log-level", "WARNING", "--pacing-scale", "0.0001",
        "--start-time", "2025-11-20T15:00", stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode()
    elapsed = time.perf_counter() - t0
    m = re.search(r":(\d+)", line)
    assert m, line
    return elapsed, proc, int(m.group(1))


async def bare_interpreter() -> float:
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    return time.perf_counter() - t0


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def timed(fn: Callable[[], Awaitable[Any]], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


async def main(rounds: int) -> None:
    base_start = statistics.median([await bare_interpreter() for _ in range(3)])
    starts = []
    for _ in range(2):
        t, proc, _port = await spawn_to_listening()
        starts.append(t)
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    start, proc, port = await spawn_to_listening()
    starts.append(start)
    rss0 = rss_kb(proc.pid)
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=1)
    try:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        weekdays = [10, 11, 12, 13, 14, 17, 18, 19, 20, 21]  # November 2025
        counter = iter(range(10**6))

        async def hist(duration: str, bar: str) -> None:
            # distinct weekday end times so no two requests are identical (pacing)
            i = next(counter)
            end = f"202511{weekdays[i % 10]:02d} {11 + i // 10 % 5}:00:00 US/Eastern"
            bars = await ib.reqHistoricalDataAsync(aapl, end, duration, bar, "TRADES", True)
            assert bars

        base = await timed(ib.reqCurrentTimeAsync, rounds)
        rows = [
            ("reqContractDetails", await timed(
                lambda: ib.reqContractDetailsAsync(Stock("MSFT", "SMART", "USD")), rounds)),
            ("historical 1 D x 1 min (390 bars)", await timed(lambda: hist("1 D", "1 min"),
                                                               rounds)),
            ("historical 1800 S x 1 secs (1,800 bars)", await timed(
                lambda: hist("1800 S", "1 secs"), rounds)),
            ("snapshot (reqTickers)", await timed(lambda: ib.reqTickersAsync(aapl), rounds)),
        ]
        rss1 = rss_kb(proc.pid)
    finally:
        ib.disconnect()
        proc.send_signal(signal.SIGTERM)
        await proc.wait()

    print(f"ibhost sim benchmark ({rounds} rounds each, medians)")
    print(f"startup to listening: {statistics.median(starts) * 1000:.0f} ms = "
          f"{statistics.median(starts) / base_start:.1f}x a bare interpreter start "
          f"({base_start * 1000:.0f} ms)")
    print(f"baseline reqCurrentTime round trip: {base * 1000:.2f} ms")
    for name, t in rows:
        print(f"  {name:<42} {t * 1000:8.2f} ms = {t / base:6.1f}x baseline")
    print(f"memory: RSS {rss0 / 1024:.0f} MiB at start, {rss1 / 1024:.0f} MiB after the runs "
          f"= {rss1 / rss0:.2f}x")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(ap.parse_args().rounds))
