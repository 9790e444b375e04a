"""The connector as a process, its ib_insync backend, its configuration and scheduler."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ibhost import config
from ibhost.config import PacingConfig
from ibhost.connector.pacing import BACKGROUND, INTERACTIVE, PaceKey, Scheduler
from ibhost.errors import IbhostError
from ibhost.ipc import IpcError
from ibhost.ipc.client import UnixClient
from ibhost.sim import Simulator

from .clocks import StepClock
from .connector_fixtures import running_connector, wait_until


async def test_ib_insync_backend_end_to_end(sim: Simulator, tmp_path: Path) -> None:
    pytest.importorskip("ib_insync")
    async with running_connector(tmp_path, sim, ib__backend="ib_insync") as (con, client):
        st = await client.request("GET", "/status")
        assert st["backend"].startswith("ib_insync")
        assert st["connection"]["serverVersion"] == 176
        v = await client.request("POST", "/validate", json_body={"symbol": "SPY"})
        assert v["conId"] == 756733
        h = await client.request("POST", "/historical", json_body={
            "symbol": "SPY", "barSize": "30 mins", "start": "2025-11-17T00:00:00Z",
            "end": "2025-11-22T00:00:00Z"})
        assert len(h["bars"]) == 5 * 13
        o = await client.request("POST", "/orders", json_body={
            "symbol": "SPY", "action": "SELL", "quantity": 2, "orderType": "MKT",
            "orderRef": "insync-1"})
        assert o["status"] == "Filled"
        ex = await client.request("GET", "/executions")
        assert [e["orderRef"] for e in ex] == ["insync-1"]


async def test_connector_process_serves_and_stops_on_sigterm(sim: Simulator,
                                                             tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "ibhost.toml").write_text(f"[ib]\nport = {sim.port}\nsettle_delay = 0.1\n")
    env = {**os.environ, "IBHOST_HOME": str(home), "IBHOST_IB_CLIENT_ID_START": "7"}
    env.pop("PROMETHEUS_DISABLE_CREATED_SERIES", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ibhost.cli", "connector", "--set", "connector.log_level=WARNING",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    sock = home / "run" / "connector.sock"
    try:
        await wait_until(lambda: sock.exists(), timeout=20)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(home / "run").st_mode) == 0o700
        client = UnixClient(str(sock))
        await wait_until(lambda: sim.state()["clients"], timeout=20)
        for _ in range(100):
            h = await client.request("GET", "/health")
            if h["status"] == "ok":
                break
            await asyncio.sleep(0.1)
        assert h["status"] == "ok" and h["clientId"] == 7  # env overrides the default
        # a program started by `ibhost` exports no `_created` series
        metrics = await client.request_text("GET", "/metrics")
        assert "ibhost_connector_request_duration_seconds" in metrics
        assert "_created" not in metrics
        await client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 15)
    assert rc == 0
    await wait_until(lambda: not sim.state()["clients"], timeout=5)  # disconnected first
    assert not sock.exists()


def test_connector_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "ibhost.toml").write_text("[ib]\nport = 'seventy'\n")
    res = subprocess.run([sys.executable, "-m", "ibhost.cli", "connector", "--home",
                          str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert "ib.port" in res.stderr and "Traceback" not in res.stderr


def test_config_layers_and_errors(tmp_path: Path) -> None:
    (tmp_path / "ibhost.toml").write_text('[ib]\nport = 4001\nhost = "10.0.0.5"\n'
                                          "[pacing]\nscale = 0.5\n")
    cfg = config.load(home=tmp_path, env={"IBHOST_IB_PORT": "4003"},
                      overrides={"ib.host": "127.0.0.1"})
    assert cfg.ib.port == 4003  # env beats file
    assert cfg.ib.host == "127.0.0.1"  # flag beats file
    assert cfg.pacing.scale == 0.5
    assert cfg.connector_socket == tmp_path / "run" / "connector.sock"
    with pytest.raises(config.ConfigError, match=r"ib\.port"):
        config.load(home=tmp_path, env={"IBHOST_IB_PORT": "0"})
    with pytest.raises(config.ConfigError, match=r"ib\.nope"):
        config.load(home=tmp_path, env={}, overrides={"ib.nope": 1})
    with pytest.raises(config.ConfigError, match=r"ib\.backend"):
        config.load(home=tmp_path, env={"IBHOST_IB_BACKEND": "ibapi"})
    with pytest.raises(config.ConfigError, match="client_id_max"):
        config.load(home=tmp_path, env={}, overrides={"ib.client_id_start": 60})
    assert config.load(home=tmp_path, env={},
                       overrides={"ib.backoff": "1, 2,3"}).ib.backoff == (1.0, 2.0, 3.0)


async def test_ipc_client_errors_are_typed(tmp_path: Path) -> None:
    c = UnixClient(str(tmp_path / "missing.sock"), connect_timeout=0.5)
    with pytest.raises(IpcError):
        await c.request("GET", "/health")
    await c.close()


def _sched(**kw: object) -> Scheduler:
    cfg = PacingConfig(**{"margin": 0.0, **kw})  # type: ignore[arg-type]
    return Scheduler(cfg)


async def test_scheduler_message_rate_with_100_callers_on_a_stepped_clock() -> None:
    """IB allows 50 messages in any second. 100 callers pressing, a third of them with
    a request the library follows with a cancel (two messages): no second ever holds
    more than 50, and close to pacing.messages_per_second per 1.05 s keep flowing. The clock moves in 0.5 ms
    steps, so the figures do not depend on how busy the machine is."""
    clock = StepClock()
    s = Scheduler(PacingConfig(), clock=clock)
    sent: list[float] = []
    stop = False

    def send(n: int) -> Callable[[], Awaitable[None]]:
        async def fn() -> None:
            for _ in range(n):
                s.note_message()
                sent.append(clock())
        return fn

    async def caller(i: int) -> None:
        n = 2 if i % 3 == 0 else 1
        while not stop:
            await s.run(send(n), messages=n)

    start = clock()
    tasks = [asyncio.create_task(caller(i)) for i in range(100)]
    await clock.run(s, 6.0)
    stop = True
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    s.close()
    worst, j = 0, 0
    for i, t in enumerate(sent):  # every one-second window, as IB counts
        while sent[j] <= t - 1.0:
            j += 1
        worst = max(worst, i - j + 1)
    assert worst <= 50, worst
    steady = [t for t in sent if start + 1.0 <= t < start + 6.0]
    rate = len(steady) / 5.0
    assert 0.95 * PacingConfig().messages_per_second / 1.05 <= rate <= 50, rate


async def test_scheduler_burst_rule_waits_instead_of_failing() -> None:
    s = _sched(burst_window=0.3, messages_per_second=1000)
    t0 = time.monotonic()
    times = []

    async def req(i: int) -> None:
        await s.run(lambda: asyncio.sleep(0), key=PaceKey(("r", i), "AAPL"))
        times.append(time.monotonic() - t0)

    await asyncio.gather(*(req(i) for i in range(7)))
    assert sorted(times)[4] < 0.1  # five at once
    assert sorted(times)[5] >= 0.29  # the sixth waits out the 2 s (scaled) window
    assert s.stats.delayed["burst"] == 2


async def test_scheduler_priorities_and_queue_limit() -> None:
    s = _sched(window=0.4, window_max=1, messages_per_second=1000)
    order: list[str] = []

    async def req(name: str, prio: int) -> None:
        async def fn() -> None:
            order.append(name)
        await s.run(fn, key=PaceKey(name, name), priority=prio)

    first = asyncio.create_task(req("first", INTERACTIVE))
    await asyncio.sleep(0.01)
    bg = asyncio.create_task(req("background", BACKGROUND))
    await asyncio.sleep(0.01)
    fg = asyncio.create_task(req("interactive", INTERACTIVE))
    await asyncio.gather(first, bg, fg)
    assert order == ["first", "interactive", "background"]
    small = _sched(queue_max=1, window=5, window_max=1, messages_per_second=1000)
    await small.run(lambda: asyncio.sleep(0), key=PaceKey("a", "a"))
    waiting = asyncio.create_task(small.run(lambda: asyncio.sleep(0), key=PaceKey("b", "b")))
    await asyncio.sleep(0.01)
    with pytest.raises(IbhostError) as ei:
        await small.run(lambda: asyncio.sleep(0), key=PaceKey("c", "c"))
    assert ei.value.code == "pacing" and ei.value.status == 429
    waiting.cancel()
    small.close()


async def test_scheduler_failed_identical_request_waits_the_window() -> None:
    s = _sched(identical_window=0.3, messages_per_second=1000)
    calls = 0

    async def boom() -> None:
        nonlocal calls
        calls += 1
        raise IbhostError("no_data", "nothing")

    with pytest.raises(IbhostError):
        await s.run(boom, key=PaceKey("same", "c"))
    t0 = time.monotonic()
    with pytest.raises(IbhostError):
        await s.run(boom, key=PaceKey("same", "c"))
    assert time.monotonic() - t0 >= 0.28  # not re-sent inside IB's 15 s (scaled) window
    assert calls == 2


def test_ib_clock_follows_ib_and_ignores_rounding() -> None:
    """IB's currentTime is whole seconds and arrives late: an offset under the
    tolerance is none; a host clock a day off (or a simulator at another date) is
    followed, and a later answer moves it again."""
    from ibhost.connector.clock import IbClock

    local = [1_800_000_000.7]
    c = IbClock(wall=lambda: local[0])
    assert c.now() == local[0]
    c.observe(1_800_000_000)  # truncated to the second: not an offset
    assert c.offset == 0.0 and c.now() == local[0]
    c.observe(1_800_086_400)  # IB is a day ahead of this machine
    assert c.offset == pytest.approx(86_399.3)
    local[0] += 10
    assert c.now_dt().timestamp() == pytest.approx(1_800_086_410, abs=1)
    c.observe(int(local[0]) - 3600)  # and later an hour behind
    assert c.offset == pytest.approx(-3600.7)
