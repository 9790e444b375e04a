"""Gateway and connector paths vs a direct ib_async call to the same simulator, same run.

    python bench/bench_connector.py [--rounds N]

Starts ``ibhost sim`` and ``ibhost connector`` as processes (pacing windows shrunk
so that pacing does not dominate), then times each request both ways:
direct (ib_async in this process -> simulator), through the connector (HTTP over
connector.sock -> connector -> simulator) and through the gateway (HTTP over TCP
-> gateway -> connector -> simulator). Prints medians, the ratios to direct, and
the connector's and gateway's RSS before and after.
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
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from ib_async import IB, Stock

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from ibhost.connector.client import ConnectorClient
from ibhost.proc import rss_mib

PY = [sys.executable, "-m", "ibhost.cli"]



async def median_time(fn: Callable[[int], Awaitable[Any]], rounds: int) -> float:
    """Median latency; rounds are spaced (untimed) below IB's message rate, so the
    library's own 45 messages/s throttle does not turn latency into queueing."""
    samples = []
    for i in range(rounds):
        await asyncio.sleep(0.03)
        t0 = time.perf_counter()
        await fn(i)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


async def main(rounds: int) -> None:
    home = tempfile.mkdtemp(prefix="ibhost-bench-")
    sim = await asyncio.create_subprocess_exec(
        *PY, "sim", "--port", "0", "--pacing-scale", "0.0001", "--log-level", "WARNING",
        "--start-time", "2025-11-20T15:00", stdout=asyncio.subprocess.PIPE)
    assert sim.stdout is not None
    port = int(re.search(r":(\d+)", (await sim.stdout.readline()).decode()).group(1))  # type: ignore[union-attr]
    con = await asyncio.create_subprocess_exec(
        *PY, "connector", "--home", home, "--port", str(port), "--client-id", "50",
        "--set", "pacing.scale=0.0001", "--set", "pacing.margin=0",
        "--set", "pacing.messages_per_second=1000", "--set", "connector.log_level=WARNING")
    gw = await asyncio.create_subprocess_exec(
        *PY, "gateway", "--home", home, "--http-port", "0", "--set",
        "gateway.log_level=WARNING", stdout=asyncio.subprocess.PIPE)
    assert gw.stdout is not None
    gw_url = "http://127.0.0.1:" + re.search(  # type: ignore[union-attr]
        r":(\d+)$", (await gw.stdout.readline()).decode().strip()).group(1)
    sock = os.path.join(home, "run", "connector.sock")
    client = ConnectorClient(sock)
    http = aiohttp.ClientSession()
    ib = IB()
    try:
        for _ in range(200):
            try:
                if (await client.health())["status"] == "ok":
                    break
            except Exception:
                pass
            await asyncio.sleep(0.05)
        rss0 = rss_mib(con.pid)
        grss0 = rss_mib(gw.pid)
        await ib.connectAsync("127.0.0.1", port, clientId=1)
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        ends = [f"202511{d:02d}" for d in (10, 11, 12, 13, 14, 17, 18, 19, 20, 21)]

        def end_of(i: int) -> tuple[str, str]:
            day = ends[i % 10]
            hour = 11 + (i // 10) % 5
            return (f"{day} {hour}:00:00 US/Eastern",
                    f"{day[:4]}-{day[4:6]}-{day[6:]}T{hour + 5}:00:00Z")

        async def direct_hist(i: int) -> None:
            bars = await ib.reqHistoricalDataAsync(aapl, end_of(i)[0], "86400 S", "1 min",
                                                   "TRADES", True)
            assert bars

        async def conn_hist(i: int) -> None:
            r = await client.historical({
                "symbol": "AAPL", "barSize": "1 min", "duration": "86400 S",
                "end": end_of(i + 100)[1]})
            assert r["bars"]

        async def gw_hist(i: int) -> None:
            async with http.post(gw_url + "/v1/data/historical", json={
                    "symbol": "AAPL", "barSize": "1 min", "duration": "86400 S",
                    "end": end_of(i + 200)[1]}) as r:
                assert (await r.json())["count"]

        async def gw_validate(i: int) -> None:
            async with http.post(gw_url + "/v1/data/validate", json={"symbol": "MSFT"}) as r:
                await r.json()

        async def gw_health(i: int) -> None:
            async with http.get(gw_url + "/v1/health") as r:
                await r.json()

        async def gw_snap(i: int) -> None:
            async with http.post(gw_url + "/v1/market/snapshot", json={"symbol": "AAPL"}) as r:
                await r.json()

        async def direct_details(i: int) -> None:
            await ib.reqContractDetailsAsync(Stock("MSFT", "SMART", "USD"))

        async def conn_validate(i: int) -> None:
            await client.validate({"symbol": "MSFT"})

        async def direct_time(i: int) -> None:
            await ib.reqCurrentTimeAsync()

        async def conn_health(i: int) -> None:
            await client.health()

        async def direct_snap(i: int) -> None:
            await ib.reqTickersAsync(aapl)

        async def conn_snap(i: int) -> None:
            await client.snapshot({"symbol": "AAPL"})

        rows = [
            ("historical 86400 S x 1 min", direct_hist, conn_hist, gw_hist),
            ("contract details / validate", direct_details, conn_validate, gw_validate),
            ("snapshot", direct_snap, conn_snap, gw_snap),
            ("reqCurrentTime / health (no IB call)", direct_time, conn_health, gw_health),
        ]
        print(f"gateway and connector vs direct ib_async, same simulator ({rounds} rounds, "
              "medians)")
        for name, d, c, g in rows:
            td = await median_time(d, rounds)
            tc = await median_time(c, rounds)
            tg = await median_time(g, rounds)
            print(f"  {name:<38} direct {td * 1000:7.2f} ms | connector {tc * 1000:7.2f} ms"
                  f" = {tc / td:5.2f}x | gateway {tg * 1000:7.2f} ms = {tg / td:5.2f}x")
        rss1 = rss_mib(con.pid)
        grss1 = rss_mib(gw.pid)
        print(f"connector RSS: {rss0:.0f} MiB ready, {rss1:.0f} MiB after = {rss1 / rss0:.2f}x")
        print(f"gateway RSS: {grss0:.0f} MiB ready, {grss1:.0f} MiB after = "
              f"{grss1 / grss0:.2f}x")
    finally:
        ib.disconnect()
        await client.close()
        await http.close()
        for p in (gw, con, sim):
            p.send_signal(signal.SIGTERM)
            await p.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    asyncio.run(main(ap.parse_args().rounds))
