"""``ibhost ctl`` as an operator and a script meet it: readable text by default, JSON
with ``--json``, and exit codes that say what is wrong (0 ok, 1 something down, 2 usage,
3 the tree cannot be reached)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ibhost.ctl import DOWN, OK, UNREACHABLE, USAGE, verdict
from ibhost.sim import Simulator

from .connector_fixtures import running_connector


def ctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ibhost.cli", "ctl", "--home", str(home),
                           *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", ["status", "reconnect", "wake", "scan", "tail connector"])
def test_no_tree_exits_3_and_says_where_it_looked(tmp_path: Path, command: str) -> None:
    r = ctl(tmp_path, *command.split())
    assert r.returncode == UNREACHABLE == 3, r.stderr
    assert f"cannot reach the tree in {tmp_path}" in r.stderr
    assert "not running" in r.stderr or "not reachable" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    js = ctl(tmp_path, "--json", *command.split())
    assert js.returncode == 3
    assert "error" in json.dumps(json.loads(js.stdout))


def test_usage_and_configuration_errors_exit_2(tmp_path: Path) -> None:
    assert ctl(tmp_path, "bogus").returncode == USAGE == 2
    assert ctl(tmp_path, "tail", "nobody").returncode == 2
    (tmp_path / "ibhost.toml").write_text("[watchdog]\nprobe_interval = 'often'\n")
    r = ctl(tmp_path, "status")
    assert r.returncode == 2 and "watchdog.probe_interval" in r.stderr


async def test_connector_alone_status_is_down_and_actions_work(sim: Simulator,
                                                              tmp_path: Path) -> None:
    """A connector without supervisord or the watchdog: status reads it, says what is
    missing and exits 1; reconnect and wake (through the connector) succeed."""
    async with running_connector(tmp_path, sim):
        st = await asyncio.to_thread(ctl, tmp_path, "status")
        assert st.returncode == DOWN == 1, st.stdout + st.stderr
        assert st.stdout.startswith("connection: ok (ready")
        last = st.stdout.strip().splitlines()[-1]
        assert last.startswith("DOWN:") and "supervisord" in last and "watchdog" in last
        assert "IB connection" not in last  # IB itself is fine
        js = await asyncio.to_thread(ctl, tmp_path, "status", "--json")
        assert js.returncode == 1 and json.loads(js.stdout)["connector"]["status"] == "ok"

        rc = await asyncio.to_thread(ctl, tmp_path, "reconnect", "--reason", "test says so")
        assert rc.returncode == OK == 0, rc.stderr
        assert rc.stdout.strip() == "reconnect requested (test says so)"
        wk = await asyncio.to_thread(ctl, tmp_path, "wake", "--source", "lid")
        assert wk.returncode == 0, wk.stderr
        assert "watchdog: not running" in wk.stdout and "asked the connector directly" \
            in wk.stdout
        assert "reconnect requested (wake: lid)" in wk.stdout
        wj = await asyncio.to_thread(ctl, tmp_path, "--json", "wake")
        assert json.loads(wj.stdout)["connector"]["ok"] is True


def _health(status: str = "ok", state: str = "ready") -> dict[str, Any]:
    return {"status": status, "state": state, "reason": "connected", "clientId": 1,
            "farms": {"usfarm": "ok"}, "competingSession": False}


def _watchdog() -> dict[str, Any]:
    return {"programs": {"connector": {"restartsTotal": 1}}, "wakesTotal": 2,
            "maintenance": None, "outage": None}


def _programs(**states: str) -> dict[str, Any]:
    names = ("connector", "gapfill", "watchdog", "gateway", "events")
    return {n: {"state": states.get(n, "RUNNING")} for n in names}


def test_status_text_when_all_is_well() -> None:
    code, lines = verdict("status", {"connector": _health(), "watchdog": _watchdog(),
                                     "programs": _programs()})
    assert code == OK
    assert lines == [
        "connection: ok (ready: connected), client id 1, farms usfarm ok",
        "programs: connector RUNNING, gapfill RUNNING, watchdog RUNNING, gateway RUNNING, "
        "events RUNNING",
        "watchdog: 2 wakes seen, 1 restarts",
        "ok: IB connected, every program running"]
    code, lines = verdict("status", {"connector": _health("degraded", "degraded"),
                                     "watchdog": _watchdog(), "programs": _programs()})
    assert code == OK and lines[-1] == "ok: IB connected (degraded), every program running"


@pytest.mark.parametrize(("out", "says"), [
    ({"connector": _health("down", "connecting"), "watchdog": _watchdog(),
      "programs": _programs()}, "DOWN: IB connection down"),
    ({"connector": _health("maintenance", "connecting"), "watchdog": _watchdog(),
      "programs": _programs()}, "DOWN: IB connection maintenance"),
    ({"connector": _health(), "watchdog": _watchdog(),
      "programs": _programs(gateway="FATAL", gapfill="BACKOFF")},
     "DOWN: gapfill BACKOFF; gateway FATAL"),
    ({"connector": {"error": "connector.sock: timed out"}, "watchdog": _watchdog(),
      "programs": _programs()}, "DOWN: the connector is not answering"),
])
def test_status_exits_1_and_names_what_is_down(out: dict[str, Any], says: str) -> None:
    code, lines = verdict("status", out)
    assert code == DOWN and lines[-1] == says


def test_scan_text_and_its_exit_code() -> None:
    code, lines = verdict("scan", {"seconds": 0.004, "files": []})
    assert (code, lines) == (OK, ["scanned 0 files in 0.00s (none due)"])
    filled = {"file": "AAPL_1h.csv", "gapsFound": 2, "gapsFilled": 2, "barsWritten": 1234,
              "lastBar": "2025-12-10T15:00:00+00:00", "missingBars": 0, "lastError": None}
    code, lines = verdict("scan", {"seconds": 1.5, "files": [filled]})
    assert code == OK and lines[1] == ("  AAPL_1h.csv: 2 gaps found, 2 filled, 1,234 bars "
                                       "written, last bar 2025-12-10T15:00:00+00:00")
    failed = {**filled, "file": "MSFT_1h.csv", "lastError": "connector: timed out"}
    skipped = {"file": "ES_1h.csv", "skipped": "the connector"}
    code, lines = verdict("scan", {"seconds": 1.5, "files": [failed, skipped]})
    assert code == DOWN
    assert lines[1].endswith("; ERROR connector: timed out")
    assert lines[2] == "  ES_1h.csv: skipped, waiting for the connector"


def test_wake_through_the_watchdog_that_could_not_reach_the_connector() -> None:
    code, lines = verdict("wake", {"source": "lid", "reconnect": "requested"})
    assert code == OK and lines == ["wake recorded by the watchdog (lid); reconnect requested"]
    code, lines = verdict("wake", {"source": "lid", "reconnect": "failed: refused"})
    assert code == DOWN and lines[0].endswith("reconnect failed: refused")
