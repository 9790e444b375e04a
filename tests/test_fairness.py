"""Fairness by identity: callers without an API key share one bucket held to
``pacing.keyless_share`` of IB's hard 10-minute window and of the message rate, so
a keyless flood never starves a caller with a key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ibhost import config
from ibhost.config import ConfigError, PacingConfig
from ibhost.connector.pacing import PaceKey, Scheduler
from ibhost.sim import Simulator

from .clocks import StepClock
from .connector_fixtures import running_connector, wait_until
from .test_gateway import KEY, gateway

SYMBOLS = ["AAPL", "MSFT", "AMZN", "SPY", "QQQ", "TSLA", "NVDA", "GOOGL", "META", "IBM"]


def _hard(i: int, who: str) -> PaceKey:  # distinct requests for distinct contracts
    return PaceKey(("bars", who, i), (who, i), weight=1, hard=True)


async def test_keyless_share_of_the_window_and_message_rate_on_a_step_clock() -> None:
    clock = StepClock()
    s = Scheduler(PacingConfig(scale=0.01, margin=0.2), clock=clock)  # window 6.2 s
    grants: list[tuple[str, float]] = []

    def send(who: str, messages: int = 1) -> Callable[[], Awaitable[None]]:
        async def fn() -> None:
            grants.append((who, clock()))
            for _ in range(messages):
                s.note_message()
        return fn

    flood = [asyncio.ensure_future(s.run(send("keyless"), key=_hard(i, "kl"),
                                         job=f"keyless/{i}")) for i in range(70)]
    await clock.run(s, 3.0)
    keyless = [t for who, t in grants if who == "keyless"]
    assert len(keyless) == 15  # 0.25 of the 60 in the window, not 60
    assert sum(not f.done() for f in flood) == 55  # held by the share, not refused

    t0 = clock()
    keyed = [asyncio.ensure_future(s.run(send("key-a"), key=_hard(0, "a"), job="key-a/1")),
             asyncio.ensure_future(s.run(send("key-a", 2), key=_hard(1, "a"), job="key-a/2",
                                         messages=2))]  # a head timestamp and its cancel
    await clock.run(s, 0.1)
    assert all(f.done() for f in keyed)
    assert [who for who, t in grants if t >= t0] == ["key-a", "key-a"]

    # a keyed caller alone may use everything the keyless bucket does not hold
    alone = [asyncio.ensure_future(s.run(send("key-b"), key=_hard(i, "b"), job=f"key-b/{i}"))
             for i in range(50)]
    await clock.run(s, 3.0)
    assert sum(f.done() for f in alone) == 60 - 15 - 2
    assert s.window_used() == 60
    assert sum(f.done() for f in flood) == 15  # the keyless bucket still held to its share

    # once the window has moved on, the keyless bucket and the keyed caller share it
    await clock.run(s, 4.0, step=0.002)
    assert sum(f.done() for f in flood) == 30
    assert sum(f.done() for f in alone) == 50
    s.close()
    await asyncio.gather(*flood, *alone, return_exceptions=True)


async def test_keyless_share_of_the_message_rate_leaves_the_rest_to_a_key() -> None:
    clock = StepClock()
    s = Scheduler(PacingConfig(), clock=clock)
    sent: dict[str, int] = {"keyless": 0, "key-a": 0}
    stop = False

    async def caller(who: str, n: int) -> None:
        async def fn() -> None:
            sent[who] += 1
            s.note_message()
        while not stop:
            await s.run(fn, job=f"{who}/{n}")

    tasks = [asyncio.ensure_future(caller(who, n)) for who in sent for n in range(20)]
    await clock.run(s, 1.05)  # the first window: bursts are allowed
    before = dict(sent)
    await clock.run(s, 4.2)
    stop = True
    s.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    keyless = (sent["keyless"] - before["keyless"]) / 4
    keyed = (sent["key-a"] - before["key-a"]) / 4
    rate = PacingConfig().messages_per_second
    assert keyless <= rate * PacingConfig().keyless_share + 1, keyless  # per 1.05 s
    assert keyless + keyed >= 0.9 * rate, (keyless, keyed)


async def test_keyless_callers_alone_may_use_the_whole_message_rate() -> None:
    """The message rate comes back within a second: with no key waiting, keyless
    callers are not held to their share of it (a keyed caller arriving gets its
    turn within a window, as the test above shows)."""
    clock = StepClock()
    s = Scheduler(PacingConfig(), clock=clock)
    sent = 0
    stop = False

    async def caller(n: int) -> None:
        nonlocal sent

        async def fn() -> None:
            nonlocal sent
            sent += 1
            s.note_message()
        while not stop:
            await s.run(fn, job=f"keyless/{n}")

    tasks = [asyncio.ensure_future(caller(n)) for n in range(20)]
    await clock.run(s, 1.05)
    before = sent
    await clock.run(s, 4.2)
    stop = True
    s.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert (sent - before) / 4 >= 0.9 * PacingConfig().messages_per_second, sent - before
    assert s.stats.delayed["share"] == 0


def test_keyless_share_is_validated(tmp_path: Path) -> None:
    assert config.load(home=tmp_path, env={}).pacing.keyless_share == 0.25
    cfg = config.load(home=tmp_path, env={"IBHOST_PACING_KEYLESS_SHARE": "0.5"})
    assert cfg.pacing.keyless_share == 0.5
    for bad in ("0", "1.5", "-0.1", "nan", "half"):
        with pytest.raises(ConfigError, match=r"pacing\.keyless_share"):
            config.load(home=tmp_path, env={}, overrides={"pacing.keyless_share": bad})


async def test_keyless_flood_does_not_starve_a_keyed_caller(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    """70 keyless 5-second-bar requests would spend IB's whole 60-per-10-minutes budget
    at once (here 6 s); a keyed 5-second-bar request and a head timestamp sent after
    them are still answered about as fast as on an idle connector."""
    async with running_connector(tmp_path, sim) as (con, _), \
            gateway(aiohttp_client, tmp_path, sim) as gw:
        hist = str(gw.make_url("/v1/data/historical"))
        head = str(gw.make_url("/v1/data/head-timestamp"))
        keyed = {"X-API-Key": KEY}

        def bars(i: int) -> dict[str, Any]:  # distinct: nothing from the cache
            return {"symbol": SYMBOLS[i % 10], "barSize": "5 secs", "duration": "1800 S",
                    "end": f"2025-11-{10 + i // 10:02d}T20:00:00Z"}

        async def timed(http: aiohttp.ClientSession, i: int, what: str) -> float:
            t0 = time.perf_counter()
            if what == "bars":
                r = await http.post(hist, json=bars(i), headers=keyed)
            else:
                r = await http.get(head, params={"symbol": SYMBOLS[i % 10],
                                                 "whatToShow": "BID"}, headers=keyed)
            assert r.status == 200, await r.text()
            await r.read()
            return time.perf_counter() - t0

        async with aiohttp.ClientSession() as http, aiohttp.ClientSession() as flood_http:
            idle = max([await timed(http, 100, "bars"), await timed(http, 1, "head")])
            await asyncio.sleep(0.5)

            async def keyless(i: int) -> int:
                r = await flood_http.post(hist, json=bars(i),
                                          headers={"X-Timeout": "20", "X-API-Key": "made-up"})
                await r.read()
                return r.status

            flood = [asyncio.ensure_future(keyless(i)) for i in range(70)]
            await wait_until(lambda: con.scheduler.stats.delayed["share"] > 0, timeout=10)
            busy = max(await asyncio.gather(timed(http, 101, "bars"), timed(http, 2, "head")))
            answered = sum(f.done() for f in flood)
            for f in flood:
                f.cancel()
            await asyncio.gather(*flood, return_exceptions=True)
    window = 600 * sim.pacing_scale
    # before fairness by identity the keyed requests waited for the window to turn over
    assert busy <= max(4 * idle, idle + 1.5) and busy < window, (idle, busy)
    assert answered < 70  # the flood was still waiting: the keyed ones overtook it
    assert sim.state()["stats"]["violations"] == []
