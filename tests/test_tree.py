"""The fault matrix, end to end: a real supervisord running connector, watchdog and
gateway against the simulator. Each test asserts recovery, that no request was
answered wrongly, and that no order was placed twice."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ib_async import IB

from ibhost import tree
from ibhost.ipc.client import UnixClient
from ibhost.sim import Simulator

from .conftest import eventually

KEY = "tree-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Tree:
    def __init__(self, home: Path, sim: Simulator, http_port: int) -> None:
        self.home = home
        self.sim = sim
        self.url = f"http://127.0.0.1:{http_port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.supervisor = tree.Supervisor(home)
        self.connector = UnixClient(str(home / "run" / "connector.sock"), read_timeout=10)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.get(self.url + path, **kw) as r:
            return r.status, await r.json()

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        async with self.http.post(self.url + path, json=body, **kw) as r:
            return r.status, await r.json()

    async def health(self) -> str:
        try:
            _, h = await self.get("/v1/health?connect=true")  # live, not the 1 s cache
            return str(h["status"])
        except (aiohttp.ClientError, OSError, TimeoutError):
            return "unreachable"

    async def wait_health(self, *states: str, timeout: float = 20) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if await self.health() in states:
                return time.monotonic() - t0
            await asyncio.sleep(0.1)
        raise AssertionError(f"health not {states} after {timeout}s: {await self.health()}")

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.connector.request("GET", "/status")
        return result

    def pid(self, program: str) -> int:
        return int(self.supervisor.process(f"ibhost:{program}")["pid"])


@pytest.fixture
async def tree_up(sim: Simulator, tmp_path: Path) -> AsyncIterator[Tree]:
    async with running_tree(sim, tmp_path) as t:
        yield t


@contextlib.asynccontextmanager
async def running_tree(sim: Simulator, tmp_path: Path,
                       gateway: str = "") -> AsyncIterator[Tree]:
    """The supervised tree against ``sim``; ``gateway``: more [gateway] settings."""
    home = tmp_path / "home"
    tree.prepare_home(home)
    http_port = free_port()
    (home / "ibhost.toml").write_text(f"""
[ib]
port = {sim.port}
settle_delay = 0.2
heartbeat_interval = 1
heartbeat_timeout = 1
[pacing]
scale = {sim.pacing_scale}
[gateway]
port = {http_port}
api_key = "{KEY}"
{gateway}
[trading]
enabled = true
[watchdog]
fail_threshold = 3
probe_timeout = 1
restart_cooldown = 5
region = "none"
""")
    t = Tree(home, sim, http_port)
    t.proc = await tree.start_supervisord(home)
    try:
        await t.wait_health("ok", timeout=40)
        await eventually(lambda: all(p["statename"] == "RUNNING"
                                     for p in t.supervisor.processes()), timeout=10)
        yield t
    finally:
        await t.http.close()
        await t.connector.close()
        await tree.stop_supervisord(t.proc)


async def bars_ok(t: Tree) -> None:
    """A historical request answered correctly (not empty, not an error)."""
    st, body = await t.post("/v1/data/historical", {
        "symbol": "AAPL", "timeframe": "1h", "duration": "1 D",
        "end": f"2025-11-{10 + int(time.time()) % 10:02d}T21:00:00Z"})
    assert st == 200 and body["count"] > 0, body


async def test_gateway_dropped(tree_up: Tree) -> None:
    t = tree_up
    t.sim.drop()
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while True:  # the drop is noticed, then the connection comes back
        c = (await t.status())["connection"]
        if c["lastDisconnectReason"] == "connection closed by the gateway" and \
                c["state"] == "ready":
            break
        assert loop.time() < end, c
        await asyncio.sleep(0.05)
    await bars_ok(t)


async def test_gateway_restarted_with_state_lost(tree_up: Tree) -> None:
    t = tree_up
    st, order = await t.post("/v1/orders", {"symbol": "AAPL", "action": "BUY", "quantity": 1,
                                         "orderType": "LMT", "limitPrice": 1},
                             headers={"X-API-Key": KEY})
    assert st == 201
    await t.sim.restart(downtime=1.0)
    await t.wait_health("down", "busy", timeout=5)
    await t.wait_health("ok", timeout=10)
    st, opens = await t.get("/v1/orders", headers={"X-API-Key": KEY})
    assert st == 200 and opens == []  # the restarted gateway forgot the order
    await bars_ok(t)


async def test_port_closed_through_the_backoff_ready_within_3s_of_return(
        tree_up: Tree) -> None:
    """Closed 20 s: the backoff (5 s, 10 s, then 30 s) has its next attempt at about
    45 s; the port probe uses the gateway within 3 s of its return instead."""
    t = tree_up
    await t.sim.close_port(20)
    await t.wait_health("down", timeout=5)
    st, body = await t.post("/v1/data/validate", {"symbol": "AAPL"})
    assert st == 503 and body["error"]["code"] == "unavailable"
    await eventually(lambda: t.sim.listening, timeout=30, interval=0.05)
    took = await t.wait_health("ok", timeout=10)
    assert took < 3.0, took
    await bars_ok(t)


async def test_frozen_gateway(tree_up: Tree) -> None:
    t = tree_up
    t.sim.freeze()
    await t.wait_health("down", timeout=10)
    reason = (await t.status())["connection"]["lastDisconnectReason"]
    assert reason.startswith("heartbeat")
    t.sim.thaw()
    await t.wait_health("ok", timeout=20)
    await bars_ok(t)


@pytest.mark.parametrize("restore", ["1101", "1102"])
async def test_1100_then_restored(tree_up: Tree, restore: str) -> None:
    t = tree_up
    t.sim.connectivity_lost(restore, after=1.0)
    await t.wait_health("degraded", timeout=3)
    await t.wait_health("ok", timeout=5)
    await bars_ok(t)


async def test_farm_2103_2104(tree_up: Tree) -> None:
    t = tree_up
    t.sim.farm_broken(2103, after=1.0)
    await t.wait_health("degraded", timeout=3)
    _, h = await t.get("/v1/health", headers={"X-API-Key": KEY})
    assert h["connector"]["farms"]["market_data"] == "broken"
    await t.wait_health("ok", timeout=5)


async def test_competing_session_10197(tree_up: Tree) -> None:
    t = tree_up
    t.sim.set_competing_session(True)
    st, body = await t.post("/v1/market/snapshot", {"symbol": "AAPL"})
    assert st == 409 and body["error"]["ib_code"] == 10197
    _, h = await t.get("/v1/health?connect=true", headers={"X-API-Key": KEY})
    assert h["connector"]["competingSession"] is True


async def test_client_id_clash_at_start(sim: Simulator, tmp_path: Path) -> None:
    squatter = IB()
    await squatter.connectAsync("127.0.0.1", sim.port, clientId=1)
    try:
        gen = tree_up.__wrapped__(sim, tmp_path)  # type: ignore[attr-defined]
        t = await gen.__anext__()
        try:
            _, h = await t.get("/v1/health", headers={"X-API-Key": KEY})
            assert h["connector"]["clientId"] == 2
            assert sim.state()["stats"]["clashes"] == [1]
        finally:
            with pytest.raises(StopAsyncIteration):
                await gen.__anext__()
    finally:
        squatter.disconnect()


async def test_forced_pacing_162(tree_up: Tree) -> None:
    t = tree_up
    t.sim.force_pacing(2)  # two 162s: retried inside the request's deadline
    body = {"symbol": "MSFT", "timeframe": "1h", "duration": "1 D",
            "end": "2025-11-19T21:00:00Z"}
    st, ok = await t.post("/v1/data/historical", body)
    assert st == 200 and ok["count"] == 7
    t.sim.force_pacing(1000)  # IB keeps refusing: a 429 once no retry fits the deadline
    st, err = await t.post("/v1/data/historical?timeout=1",
                           {**body, "end": "2025-11-18T21:00:00Z"})
    assert st == 429 and err["error"]["ib_code"] == 162  # never an empty result
    t.sim.force_pacing(0)


async def test_connector_kill_9_back_within_5s_no_double_order(tree_up: Tree) -> None:
    t = tree_up
    order = {"symbol": "AAPL", "action": "BUY", "quantity": 2, "orderType": "MKT",
             "orderRef": "kill9-order"}
    hdrs = {"X-API-Key": KEY, "Idempotency-Key": "attempt-1"}
    st, first = await t.post("/v1/orders", order, headers=hdrs)
    assert st == 201 and first["status"] == "Filled"
    old = t.pid("connector")
    os.kill(old, signal.SIGKILL)
    t0 = time.monotonic()
    await t.wait_health("down", "busy", timeout=5)
    await t.wait_health("ok", timeout=10)
    assert time.monotonic() - t0 < 5.0
    assert t.pid("connector") != old
    # the same retry: answered from the gateway's idempotency store
    st, replay = await t.post("/v1/orders", order, headers=hdrs)
    assert st == 201 and replay["permId"] == first["permId"]
    # a retry the gateway has never seen (new key, same orderRef): the restarted
    # connector finds the order at IB and does not place it again
    st, again = await t.post("/v1/orders", order, headers={**hdrs, "Idempotency-Key": "attempt-2"})
    assert st == 200 and again["duplicate"] is True and again["permId"] == first["permId"]
    assert len(t.sim.state()["executions"]) == 1


async def test_connector_sigstop_watchdog_restarts_it(tree_up: Tree) -> None:
    t = tree_up
    old = t.pid("connector")
    os.kill(old, signal.SIGSTOP)
    try:
        await t.wait_health("busy", timeout=5)
        await eventually(lambda: t.pid("connector") != old, timeout=30, interval=0.2)
    finally:
        try:
            os.kill(old, signal.SIGCONT)
        except ProcessLookupError:
            pass
    await t.wait_health("ok", timeout=15)
    wd = UnixClient(str(t.home / "run" / "watchdog.sock"))
    st = await wd.request("GET", "/status")
    await wd.close()
    restarts = st["programs"]["ibhost:connector"]["restarts"]
    assert restarts and "failed probes" in restarts[0]["reason"]
    await bars_ok(t)


async def test_gateway_kill_9(tree_up: Tree) -> None:
    t = tree_up
    old = t.pid("gateway")
    os.kill(old, signal.SIGKILL)
    await t.wait_health("ok", timeout=10)
    assert t.pid("gateway") != old
    await bars_ok(t)
    await eventually(lambda: (t.home / "run" / "events.json").exists(), timeout=5)
    import json

    assert json.loads((t.home / "run" / "events.json").read_text()) == {"gateway:EXITED": 1}
    async with t.http.get(t.url + "/metrics") as r:
        text = await r.text()
    assert 'ibhost_watchdog_process_exits_total{program="gateway",state="EXITED"} 1.0' in text


async def test_wake_reconnects_within_2s(tree_up: Tree) -> None:
    t = tree_up
    t0 = time.monotonic()
    res = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "ibhost.cli", "ctl", "--home", str(t.home), "wake"],
        capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr

    async def reconnected() -> bool:
        s = (await t.status())["connection"]
        return (s["lastDisconnectReason"] or "").startswith("wake") and s["state"] == "ready"

    while not await reconnected():
        assert time.monotonic() - t0 < 2.0 + 1.0  # 1 s allowance for starting the CLI
        await asyncio.sleep(0.05)
    await bars_ok(t)


async def test_ctl_status_and_tail(tree_up: Tree) -> None:
    t = tree_up

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ibhost.cli", "ctl", "--home",
                               str(t.home), *args], capture_output=True, text=True, timeout=30)

    res = await asyncio.to_thread(ctl, "status")
    assert res.returncode == 0 and "connection: ok" in res.stdout
    assert "connector RUNNING" in res.stdout
    assert res.stdout.splitlines()[-1] == "ok: IB connected, every program running"
    js = await asyncio.to_thread(ctl, "--json", "status")
    import json

    assert json.loads(js.stdout)["programs"]["connector"]["state"] == "RUNNING"
    tail = await asyncio.to_thread(ctl, "tail", "connector")
    assert "state synchronizing -> ready" in tail.stdout
    scan = await asyncio.to_thread(ctl, "--json", "scan")  # the supervised gap-filler
    assert scan.returncode == 0 and json.loads(scan.stdout)["files"] == []
    text = await asyncio.to_thread(ctl, "scan")
    assert text.returncode == 0 and text.stdout.startswith("scanned 0 files in ")
    assert json.loads(js.stdout)["programs"]["gapfill"]["state"] == "RUNNING"
    # the same programs, with their pids, in the gateway's detailed health
    st, d = await t.get("/v1/health/detailed", headers={"X-API-Key": KEY})
    assert st == 200
    assert d["programs"]["connector"]["state"] == "RUNNING"
    assert d["programs"]["connector"]["pid"] == t.pid("connector")
    assert set(d["programs"]) >= {"connector", "gateway", "watchdog", "gapfill"}
    assert d["watchdog"]["status"] == "ok" and d["watchdog"]["outage"] is None
    _, k = await t.get("/health/detailed", headers={"X-API-Key": KEY})
    assert k["programs"]["gateway"]["state"] == "RUNNING"


OWNER = """
import asyncio, sys
from pathlib import Path
from ibhost import tree

async def main() -> None:
    proc = await tree.start_supervisord(Path(sys.argv[1]))
    print(proc.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie waiting for its parent is gone too
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
async def test_a_tree_stops_when_its_owner_is_killed(sim: Simulator, tmp_path: Path) -> None:
    """The process that started supervisord (``ibhost demo``, a bench, a test) is
    killed without cleaning up: supervisord and every program it ran stop too, instead
    of running on with nobody to stop them."""
    home = tmp_path / "home"
    tree.prepare_home(home)
    (home / "ibhost.toml").write_text(f"""
[ib]
port = {sim.port}
[gateway]
port = {free_port()}
[watchdog]
region = "none"
""")
    owner = await asyncio.create_subprocess_exec(sys.executable, "-c", OWNER, str(home),
                                                 stdout=asyncio.subprocess.PIPE)
    sup_pid = 0
    try:
        assert owner.stdout is not None
        sup_pid = int(await owner.stdout.readline())
        def running() -> list[int]:
            try:  # a fresh proxy each time: one whose request failed cannot send again
                procs = tree.Supervisor(home).processes()
            except (OSError, http.client.HTTPException, xmlrpc.client.Fault):
                return []
            return [int(p["pid"]) for p in procs if p["statename"] == "RUNNING"]

        await eventually(lambda: len(running()) == len(tree.PROGRAMS) + 1, timeout=30,
                         interval=0.2)
        programs = running()
        owner.kill()  # SIGKILL: the owner runs no clean-up of its own
        await owner.wait()
        await eventually(lambda: not any(_alive(p) for p in [sup_pid, *programs]),
                         timeout=40, interval=0.2)
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()
        if sup_pid and _alive(sup_pid):  # only if the test failed: ours, by its pid
            os.kill(sup_pid, signal.SIGTERM)
