"""The watchdog in-process: clock-jump wake, maintenance windows, escalation rules."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from supervisor.xmlrpc import Faults

from ibhost.connector.session import State
from ibhost.sim import Simulator
from ibhost.watchdog.api import WatchdogCollector
from ibhost.watchdog.clock import SleepDetector
from ibhost.watchdog.core import Supervisor, Watchdog
from ibhost.watchdog.maintenance import Schedule, parse_window

from .connector_fixtures import make_config, running_connector, wait_until

ET = ZoneInfo("US/Eastern")


def test_sleep_detector_sees_clock_jumps() -> None:
    offset = [100.0]
    d = SleepDetector(5.0, offset=lambda: offset[0])
    assert d.check() is None
    offset[0] += 0.01  # ordinary drift
    assert d.check() is None
    offset[0] += 600  # slept ten minutes
    assert d.check() == pytest.approx(600)
    assert d.check() is None
    real = SleepDetector(5.0)
    assert real.check() is None  # the default clocks do not jump by themselves


def test_maintenance_windows() -> None:
    na = Schedule("na")
    assert na.active(dt.datetime(2025, 11, 20, 23, 50, tzinfo=ET)).text == "daily 23:45-00:45"
    assert na.active(dt.datetime(2025, 11, 21, 0, 30, tzinfo=ET)) is not None  # past midnight
    assert na.active(dt.datetime(2025, 11, 20, 12, 0, tzinfo=ET)) is None
    assert na.active(dt.datetime(2025, 11, 23, 2, 0, tzinfo=ET)).text == "sun 00:00-03:00"
    assert na.active(dt.datetime(2025, 11, 22, 2, 0, tzinfo=ET)) is None  # Saturday
    custom = Schedule("na", ("sat 22:00-02:00",), "UTC")
    assert custom.active(dt.datetime(2025, 11, 23, 1, 0, tzinfo=dt.UTC)) is not None  # Sun 1am
    assert custom.active(dt.datetime(2025, 11, 24, 1, 0, tzinfo=dt.UTC)) is None  # Mon 1am
    with pytest.raises(ValueError, match="expected"):
        parse_window("weekly 1-2")
    with pytest.raises(ValueError, match="bad time"):
        parse_window("daily 25:00-26:00")


class FakeSupervisor:
    available = True

    def __init__(self) -> None:
        self.restarted: list[str] = []

    async def restart(self, name: str) -> None:
        self.restarted.append(name)


class FaultingRpc:
    """supervisord's XML-RPC namespace, raising the given faults per method."""

    def __init__(self, **faults: int) -> None:
        self.faults = faults
        self.calls: list[str] = []

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any) -> bool:
            self.calls.append(method)
            if method in self.faults:
                raise xmlrpc.client.Fault(self.faults[method], method)
            return True
        return call


@pytest.mark.parametrize(("faults", "calls"), [
    # supervisord answers signalProcess with BAD_SIGNAL (11) when the process cannot be
    # signalled, NOT_RUNNING (70) when it is not running: the restart goes on
    ({"signalProcess": Faults.BAD_SIGNAL}, ["signalProcess", "stopProcess", "startProcess"]),
    ({"signalProcess": Faults.NOT_RUNNING, "stopProcess": Faults.NOT_RUNNING,
      "startProcess": Faults.ALREADY_STARTED},
     ["signalProcess", "stopProcess", "startProcess"]),
])
def test_restart_branches_on_supervisors_own_fault_codes(faults: dict[str, int],
                                                        calls: list[str]) -> None:
    rpc = FaultingRpc(**faults)
    sup = Supervisor({})
    sup._rpc = lambda: SimpleNamespace(supervisor=rpc)  # type: ignore[method-assign]
    sup._restart("ibhost:connector")
    assert rpc.calls == calls


def test_restart_raises_other_faults() -> None:
    rpc = FaultingRpc(stopProcess=Faults.BAD_NAME)
    sup = Supervisor({})
    sup._rpc = lambda: SimpleNamespace(supervisor=rpc)  # type: ignore[method-assign]
    with pytest.raises(xmlrpc.client.Fault):
        sup._restart("ibhost:nope")
    assert rpc.calls == ["signalProcess", "stopProcess"]


def test_the_watchdog_loads_supervisors_xmlrpc_only_to_restart() -> None:
    """Fault codes come from supervisor.xmlrpc, imported when a restart is made: the
    watchdog's start stays light."""
    code = ("import sys\nimport ibhost.watchdog.main, ibhost.watchdog.core\n"
            "print(sorted(m for m in ('supervisor.xmlrpc', 'xmlrpc.client') "
            "if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def _unused_port() -> int:
    """A port nothing listens on now (bound, then closed): never the default 5001,
    which another ibhost on this machine may hold."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _watchdog(home: Path, sim: Simulator, **kw: Any) -> tuple[Watchdog, list[float]]:
    offset = [0.0]
    kw.setdefault("gateway__port", _unused_port())
    cfg = make_config(home, sim, watchdog__fail_threshold=3, watchdog__restart_cooldown=60,
                      watchdog__region="none", **kw)
    wd = Watchdog(cfg, supervisor=FakeSupervisor(),  # type: ignore[arg-type]
                  detector=SleepDetector(5.0, offset=lambda: offset[0]))
    return wd, offset


async def test_clock_jump_reconnects_within_2s(sim: Simulator, tmp_path: Path) -> None:
    async with running_connector(tmp_path, sim, ib__heartbeat_interval=30) as (con, _):
        wd, offset = _watchdog(tmp_path, sim)
        try:
            await wd.tick()
            assert wd.wakes == []
            offset[0] += 3600  # the laptop slept for an hour
            t0 = time.monotonic()
            await wd.tick()
            assert wd.wakes[0]["reconnect"] == "requested"
            assert "clock jump" in wd.wakes[0]["source"]
            await wait_until(lambda: (con.session.diag.lastDisconnectReason or "").startswith(
                "wake"), timeout=2)
            await con.session.wait_state(State.READY, timeout=2)
            assert time.monotonic() - t0 < 2.0
        finally:
            await wd.stop()


async def test_escalation_threshold_cooldown_and_maintenance(sim: Simulator,
                                                             tmp_path: Path) -> None:
    wd, _ = _watchdog(tmp_path, sim)  # nothing listens: every probe fails
    sup = wd.supervisor
    try:
        for _ in range(2):
            await wd.tick()
        assert sup.restarted == []  # soft failures: logged and counted only
        await wd.tick()
        assert sorted(sup.restarted) == ["ibhost:connector", "ibhost:gapfill",
                                         "ibhost:gateway"]
        for _ in range(5):
            await wd.tick()
        assert len(sup.restarted) == 3  # cooldown: not again at once
        st = wd.status()["programs"]["ibhost:connector"]
        assert st["failuresTotal"] == 8 and st["restartsTotal"] == 1
        assert "3 failed probes" in st["restarts"][0]["reason"]
    finally:
        await wd.stop()
    now = dt.datetime.now(dt.UTC)
    window = f"daily {now:%H}:00-{(now + dt.timedelta(hours=1)):%H}:59"
    wd2, _ = _watchdog(tmp_path, sim, watchdog__maintenance=window,
                       watchdog__maintenance_tz="UTC")
    try:
        for _ in range(5):
            await wd2.tick()
        assert wd2.maintenance == window and wd2.supervisor.restarted == []
    finally:
        await wd2.stop()


@contextlib.asynccontextmanager
async def ibc_command_server() -> AsyncIterator[tuple[int, list[str]]]:
    """IBC's command server on a free port: (its port, the commands it got), each
    answered OK."""
    got: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append((await reader.readline()).decode().strip())
        writer.write(b"OK\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], got
    finally:
        server.close()


async def test_ibc_commands(sim: Simulator, tmp_path: Path) -> None:
    async with ibc_command_server() as (port, got), running_connector(tmp_path, sim):
        wd, _ = _watchdog(tmp_path, sim, watchdog__ibc_enabled=True, watchdog__ibc_port=port,
                          watchdog__ibc_farm_loss_after=0.1)
        try:
            sim.farm_broken(2105, after=None)
            await asyncio.sleep(0.3)
            await wd.tick()
            await asyncio.sleep(0.2)
            await wd.tick()
            assert got == ["RECONNECTDATA"]
            assert wd.status()["ibc"]["commands"][0]["answer"] == "OK"
        finally:
            await wd.stop()


async def test_outage_that_outlives_the_maintenance_window_is_escalated(
        sim: Simulator, tmp_path: Path) -> None:
    """The nightly reset leaves IB Gateway at its login screen: inside the window
    the outage is expected; a minute after the window it is an error, a metric,
    the alert command and an IBC RESTART; once IB is back it is over."""
    alert_out = tmp_path / "alert.txt"
    script = tmp_path / "alert.py"
    script.write_text("import os, sys\n"
                      f"open({str(alert_out)!r}, 'w').write(os.environ['IBHOST_ALERT_CAUSE']"
                      " + ' ' + os.environ['IBHOST_ALERT_MESSAGE'])\n")
    clock = [dt.datetime(2026, 11, 18, 10, 30, tzinfo=dt.UTC).timestamp()]
    async with ibc_command_server() as (ibc_port, got), \
            running_connector(tmp_path, sim, ib__backoff="0.2") as (con, _):
        cfg = make_config(tmp_path, sim, watchdog__region="none",
                          watchdog__maintenance="daily 10:00-11:00",
                          watchdog__maintenance_tz="UTC", watchdog__ibc_enabled=True,
                          watchdog__ibc_port=ibc_port, watchdog__outage_grace=60,
                          watchdog__alert_command=f"{sys.executable} {script}",
                          gateway__port=_unused_port())
        wd = Watchdog(cfg, supervisor=FakeSupervisor(),  # type: ignore[arg-type]
                      detector=SleepDetector(5.0, offset=lambda: 0.0),
                      wall=lambda: clock[0])
        registry = CollectorRegistry()
        registry.register(WatchdogCollector(wd, tmp_path / "events.json"))

        def metric(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, labels)

        try:
            await sim.close_port(120)  # the reset: IB Gateway gone
            await con.session.wait_state(State.DOWN, State.CONNECTING, timeout=5)
            await wd.tick()
            assert wd.outage is not None and wd.outage.window == "daily 10:00-11:00"
            clock[0] += 29 * 60  # 10:59, still inside
            await wd.tick()
            assert wd.outage.escalated_at is None and got == []
            assert metric("ibhost_watchdog_outage_escalated") == 0
            clock[0] += 90  # 11:00:30: the window is over, within the grace
            await wd.tick()
            assert wd.outage.escalated_at is None and got == []
            clock[0] += 61  # 11:01:31: still down a minute after the window
            await wd.tick()
            st = wd.status()["outage"]
            assert st["cause"] == "after_maintenance" and st["escalatedAt"] == clock[0]
            assert "login screen" in st["message"]
            assert got == ["RESTART"]
            assert alert_out.read_text().startswith("after_maintenance IB connection down")
            assert wd.status()["escalations"][0]["alertCommand"] == "ok"
            assert metric("ibhost_watchdog_outage_escalated") == 1
            assert metric("ibhost_watchdog_outage_escalations_total",
                          cause="after_maintenance") == 1
            assert metric("ibhost_watchdog_ib_down_seconds") == pytest.approx(31 * 60 + 31)
            clock[0] += 30
            await wd.tick()  # escalated once, not on every tick
            assert got == ["RESTART"] and len(wd.escalations) == 1
            await sim.reopen_port()
            await con.session.wait_state(State.READY, timeout=10)
            await wd.tick()
            assert wd.outage is None and metric("ibhost_watchdog_outage_escalated") == 0
        finally:
            await wd.stop()


async def test_still_down_after_the_weekly_restart_says_a_login_is_needed(
        sim: Simulator, tmp_path: Path) -> None:
    """IB's weekly restart logs IB Gateway out: still down after the Sunday window, the
    escalation says a login with the second factor is needed (its own cause, alert
    and metric), not just that a window was outlived."""
    alert_out = tmp_path / "alert.txt"
    script = tmp_path / "alert.py"
    script.write_text("import os\n"
                      f"open({str(alert_out)!r}, 'w').write(os.environ['IBHOST_ALERT_CAUSE']"
                      " + ' ' + os.environ['IBHOST_ALERT_MESSAGE'])\n")
    clock = [dt.datetime(2026, 11, 22, 5, 30, tzinfo=dt.UTC).timestamp()]  # a Sunday
    async with running_connector(tmp_path, sim, ib__backoff="0.2") as (con, _):
        cfg = make_config(tmp_path, sim, watchdog__region="none",
                          watchdog__maintenance="sun 05:00-06:00",
                          watchdog__maintenance_tz="UTC", watchdog__outage_grace=60,
                          watchdog__alert_command=f"{sys.executable} {script}",
                          gateway__port=_unused_port())
        wd = Watchdog(cfg, supervisor=FakeSupervisor(),  # type: ignore[arg-type]
                      detector=SleepDetector(5.0, offset=lambda: 0.0),
                      wall=lambda: clock[0])
        registry = CollectorRegistry()
        registry.register(WatchdogCollector(wd, tmp_path / "events.json"))
        try:
            await sim.close_port(120)  # the weekly restart: IB Gateway gone
            await con.session.wait_state(State.DOWN, State.CONNECTING, timeout=5)
            await wd.tick()
            assert wd.outage is not None and wd.outage.window == "sun 05:00-06:00"
            clock[0] += 29 * 60 + 90  # 06:00:30: the window is over, within the grace
            await wd.tick()
            assert wd.outage.escalated_at is None
            clock[0] += 61  # still down a minute after the window
            await wd.tick()
            st = wd.status()["outage"]
            assert st["cause"] == "login_required"
            assert "waiting for a login" in st["message"] and "second factor" in st["message"]
            assert alert_out.read_text().startswith("login_required IB connection down")
            assert registry.get_sample_value("ibhost_watchdog_outage_escalations_total",
                                             {"cause": "login_required"}) == 1
            assert registry.get_sample_value("ibhost_watchdog_outage_escalations_total",
                                             {"cause": "after_maintenance"}) == 0
        finally:
            await sim.reopen_port()
            await wd.stop()


async def test_outage_outside_maintenance_escalates_only_after_outage_alert_after(
        sim: Simulator, tmp_path: Path) -> None:
    clock = [dt.datetime(2026, 11, 18, 14, 0, tzinfo=dt.UTC).timestamp()]
    async with running_connector(tmp_path, sim, ib__backoff="0.2") as (con, _):
        cfg = make_config(tmp_path, sim, watchdog__region="none",
                          watchdog__outage_alert_after=600, gateway__port=_unused_port())
        wd = Watchdog(cfg, supervisor=FakeSupervisor(),  # type: ignore[arg-type]
                      detector=SleepDetector(5.0, offset=lambda: 0.0),
                      wall=lambda: clock[0])
        try:
            await sim.close_port(120)
            await con.session.wait_state(State.DOWN, State.CONNECTING, timeout=5)
            await wd.tick()
            clock[0] += 599
            await wd.tick()
            assert wd.outage is not None and wd.outage.escalated_at is None
            clock[0] += 2
            await wd.tick()
            assert wd.outage.cause == "long_outage" and wd.escalation_counts == {
                "long_outage": 1}
        finally:
            await sim.reopen_port()
            await wd.stop()


def test_event_listener_protocol(tmp_path: Path) -> None:
    payload = "processname:connector groupname:ibhost from_state:RUNNING expected:0 pid:42"
    header = (f"ver:3.0 server:supervisor serial:1 pool:events poolserial:1 "
              f"eventname:PROCESS_STATE_EXITED len:{len(payload)}\n")
    res = subprocess.run([sys.executable, "-m", "ibhost.cli", "events", "--home",
                          str(tmp_path)], input=header + payload, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0
    assert res.stdout.startswith("READY\nRESULT 2\nOKREADY\n")
    assert json.loads((tmp_path / "run" / "events.json").read_text()) == {
        "connector:EXITED": 1}
