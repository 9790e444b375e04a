"""``ibhost sim`` as a process: flags, the control socket over HTTP, ``ibhost sim ctl``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from ib_async import IB

from ibhost.sim.control import SimControl

IBHOST = [sys.executable, "-m", "ibhost.cli"]


class SimProcess:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, control: str) -> None:
        self.proc = proc
        self.port = port
        self.control = control


async def start_sim(tmp_path: Path, *extra: str) -> SimProcess:
    control = str(tmp_path / "sim.sock")
    proc = await asyncio.create_subprocess_exec(
        *IBHOST, "sim", "--port", "0", "--control", control, "--log-level", "WARNING", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    assert m, line
    return SimProcess(proc, int(m.group(1)), control)


@pytest.fixture
async def simproc(tmp_path: Path) -> AsyncIterator[SimProcess]:
    sp = await start_sim(tmp_path, "--seed", "3")
    yield sp
    if sp.proc.returncode is None:
        sp.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(sp.proc.wait(), 10)


def ctl(sp: SimProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IBHOST, "sim", "ctl", "--control", sp.control, *args],
                          capture_output=True, text=True, timeout=30)


async def test_sigterm_exits_cleanly_and_removes_the_socket(tmp_path: Path) -> None:
    sp = await start_sim(tmp_path)
    mode = stat.S_IMODE(os.stat(sp.control).st_mode)
    assert mode == 0o600
    sp.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(sp.proc.wait(), 10) == 0
    assert not os.path.exists(sp.control)


async def test_ctl_drives_a_running_simulator(simproc: SimProcess) -> None:
    ib = IB()
    await ib.connectAsync("127.0.0.1", simproc.port, clientId=4)
    gone = asyncio.Event()
    ib.disconnectedEvent += lambda: gone.set()
    state = await asyncio.to_thread(ctl, simproc, "--json", "state")
    assert state.returncode == 0
    assert [c["clientId"] for c in json.loads(state.stdout)["clients"]] == [4]
    human = await asyncio.to_thread(ctl, simproc, "state")
    assert "clients: 4" in human.stdout
    res = await asyncio.to_thread(ctl, simproc, "drop")
    assert res.returncode == 0 and json.loads(res.stdout)["ok"] is True
    await asyncio.wait_for(gone.wait(), 5)


async def test_ctl_rejects_bad_parameters(simproc: SimProcess) -> None:
    res = await asyncio.to_thread(ctl, simproc, "slow", "--ms", "abc")
    assert res.returncode == 1
    assert "ms: must be float" in res.stderr


async def test_ctl_without_a_simulator(tmp_path: Path) -> None:
    res = subprocess.run([*IBHOST, "sim", "ctl", "--control", str(tmp_path / "none.sock"),
                          "state"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert "control socket" in res.stderr and "Traceback" not in res.stderr


async def test_control_http_errors_are_json_and_name_the_field(simproc: SimProcess) -> None:
    conn = aiohttp.UnixConnector(path=simproc.control)
    async with aiohttp.ClientSession(connector=conn) as http:
        async with http.post("http://sim/faults/nope") as r:
            assert r.status == 404
            assert "unknown fault" in (await r.json())["error"]["message"]
        async with http.post("http://sim/faults/slow", data=b"{not json",
                             headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400 and (await r.json())["error"]["field"] == "body"
        async with http.post("http://sim/faults/slow", json={"msec": 5}) as r:
            body = await r.json()
            assert r.status == 400 and body["error"]["field"] == "msec"
        async with http.post("http://sim/faults/farm", json={"after": 1}) as r:
            body = await r.json()
            assert r.status == 400 and body["error"]["field"] == "code"
        async with http.post("http://sim/faults/farm", json={"code": 1234}) as r:
            assert r.status == 400 and "2103" in (await r.json())["error"]["message"]
        async with http.post("http://sim/faults/pacing", json={"count": -1}) as r:
            assert r.status == 400 and (await r.json())["error"]["field"] == "count"
        async with http.get("http://sim/faults") as r:
            names = {f["name"] for f in await r.json()}
            assert {"drop", "freeze", "close-port", "restart", "pacing"} <= names


async def test_python_control_client(simproc: SimProcess) -> None:
    c = SimControl(simproc.control)
    await c.fault("pacing", count=1)
    await c.fault("missing", symbol="AAPL", ranges=["2025-11-20T15:00/2025-11-20T16:00"])
    st = await c.state()
    assert st["forced_pacing_left"] == 1 and st["seed"] == 3


async def test_startup_flags(tmp_path: Path) -> None:
    sp = await start_sim(tmp_path, "--no-subscription", "TSLA=10089", "--ready-delay", "0.2",
                         "--missing", "AAPL=2025-11-20T15:00/2025-11-20T16:00")
    try:
        st = await SimControl(sp.control).state()
        assert st["no_subscription"] == {"TSLA": 10089}
        assert st["ready_delay"] == 0.2
    finally:
        sp.proc.send_signal(signal.SIGTERM)
        await sp.proc.wait()


def test_bad_startup_flag_is_a_clear_error(tmp_path: Path) -> None:
    res = subprocess.run([*IBHOST, "sim", "--port", "0", "--missing", "AAPL=garbage"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "ibhost sim:" in res.stderr
