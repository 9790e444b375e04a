"""Soak: mixed load through the gateway with random faults; prints a summary.

Not run in CI (marked ``soak``):  IBHOST_SOAK_SECONDS=600 python3 -m pytest -m soak -s
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time

import pytest

from ibhost.sim import Simulator

from .test_tree import KEY, Tree, tree_up  # noqa: F401  (the fixture)

pytestmark = pytest.mark.soak


async def test_soak(tree_up: Tree, sim: Simulator) -> None:  # noqa: F811
    t = tree_up
    seconds = float(os.environ.get("IBHOST_SOAK_SECONDS", "60"))
    rng = random.Random(int(os.environ.get("IBHOST_SOAK_SEED", "1")))
    results: collections.Counter[str] = collections.Counter()
    faults: collections.Counter[str] = collections.Counter()
    wrong: list[str] = []
    order_keys = 0
    end = time.monotonic() + seconds

    async def load() -> None:
        nonlocal order_keys
        while time.monotonic() < end:
            kind = rng.choice(["bars", "bars", "validate", "snapshot", "order", "health"])
            try:
                if kind == "bars":
                    st, body = await t.post("/v1/data/historical", {
                        "symbol": rng.choice(["AAPL", "MSFT", "SPY", "QQQ"]),
                        "timeframe": "1h", "duration": "1 D",
                        "end": f"2025-11-{rng.randint(10, 21):02d}T21:00:00Z"})
                    if st == 200 and not body["count"]:
                        wrong.append("empty bars with 200")
                elif kind == "validate":
                    st, body = await t.post("/v1/data/validate", {"symbol": "IBM"})
                elif kind == "snapshot":
                    st, body = await t.post("/v1/market/snapshot", {"symbol": "SPY"})
                elif kind == "order":
                    order_keys += 1
                    st, body = await t.post(
                        "/v1/orders", {"symbol": "AAPL", "action": "BUY", "quantity": 1,
                                    "orderType": "MKT"},
                        headers={"X-API-Key": KEY, "Idempotency-Key": f"soak-{order_keys}"})
                else:
                    st, body = await t.get("/v1/health")
                if st >= 500 and st not in (503, 504):
                    wrong.append(f"{kind}: {st} {body}")
                results[f"{kind} {st}"] += 1
            except Exception as e:  # the gateway itself restarting
                results[f"{kind} {type(e).__name__}"] += 1
            await asyncio.sleep(rng.uniform(0.05, 0.3))

    async def chaos() -> None:
        while time.monotonic() < end - 10:
            await asyncio.sleep(rng.uniform(3, 8))
            fault = rng.choice(["drop", "freeze", "1101", "1102", "farm", "pacing", "restart"])
            faults[fault] += 1
            if fault == "drop":
                sim.drop()
            elif fault == "freeze":
                sim.freeze()
                await asyncio.sleep(rng.uniform(1, 4))
                sim.thaw()
            elif fault in ("1101", "1102"):
                sim.connectivity_lost(fault, after=rng.uniform(0.5, 3))
            elif fault == "farm":
                sim.farm_broken(rng.choice([2103, 2105, 2157]), after=rng.uniform(0.5, 3))
            elif fault == "pacing":
                sim.force_pacing(rng.randint(1, 3))
            else:
                await sim.restart(downtime=rng.uniform(0, 2))

    await asyncio.gather(load(), chaos())
    await t.wait_health("ok", timeout=30)
    placed = len(sim.state()["executions"])
    print(f"\nsoak {seconds:g}s: faults {dict(faults)}")
    for k, v in sorted(results.items()):
        print(f"  {k:<28} {v}")
    print(f"  orders sent {order_keys}, executions at the gateway {placed}")
    assert not wrong, wrong[:5]
    # a gateway restart loses its orders and fills, so executions can only be fewer
    assert placed <= order_keys
