"""The OS units, supervisord.conf, alert rules and dashboard are valid as shipped."""

from __future__ import annotations

import json
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent


def test_launchd_plist() -> None:
    data = plistlib.loads((ROOT / "launchd" / "com.ibhost.supervisord.plist").read_bytes())
    assert data["Label"] == "com.ibhost.supervisord"
    assert data["RunAtLoad"] is True and data["KeepAlive"] is True
    args = data["ProgramArguments"]
    assert args[1:4] == ["-m", "supervisor.supervisord", "-n"]  # foreground, owned by launchd
    assert args[-1].endswith("supervisord.conf")
    assert {"IBHOST_HOME", "IBHOST_PYTHON"} <= set(data["EnvironmentVariables"])
    assert data["StandardOutPath"] and data["StandardErrorPath"]


@pytest.mark.parametrize("unit", ["ibhost.service", "ibhost-system.service",
                                  "ibhost-resume.service"])
def test_systemd_units_verify(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    text = (ROOT / "systemd" / unit).read_text()
    # the units name install-time paths; point them at this interpreter to verify
    text = text.replace("/opt/ibhost/venv/bin/python", sys.executable)
    text = text.replace("%h/.ibhost/venv/bin/python", sys.executable)
    (tmp_path / unit).write_text(text)
    res = subprocess.run([analyze, "verify", str(tmp_path / unit)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stderr


def test_resume_unit_runs_after_sleep() -> None:
    text = (ROOT / "systemd" / "ibhost-resume.service").read_text()
    for target in ("suspend.target", "hibernate.target", "hybrid-sleep.target"):
        assert target in text.split("After=")[1].splitlines()[0]
        assert target in text.split("WantedBy=")[1].splitlines()[0]
    assert "ctl wake" in text


def test_supervisord_conf_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor.options import ServerOptions

    from ibhost.tree import prepare_home

    prepare_home(tmp_path)
    monkeypatch.setenv("IBHOST_HOME", str(tmp_path))
    monkeypatch.setenv("IBHOST_PYTHON", sys.executable)
    opts = ServerOptions()
    opts.realize(args=["-c", str(ROOT / "supervisord.conf")])
    groups = {g.name: g for g in opts.process_group_configs}
    assert set(groups) == {"ibhost", "events"}
    progs = {p.name: p for p in groups["ibhost"].process_configs}
    assert set(progs) == {"connector", "gapfill", "watchdog", "gateway"}
    assert progs["connector"].priority < progs["gapfill"].priority < \
        progs["watchdog"].priority < progs["gateway"].priority
    for p in progs.values():
        assert p.autorestart and p.stopasgroup and p.killasgroup and p.startsecs >= 1
        assert p.exitcodes == [0] and p.stopwaitsecs >= 5
        assert p.umask == 0o077  # supervisord's own umask is not applied under -n
        assert p.stdout_logfile.startswith(str(tmp_path / "log"))
        assert p.stdout_logfile_maxbytes > 0 and p.stdout_logfile_backups > 0
    assert [p.umask for p in groups["events"].process_configs] == [0o077]
    assert opts.server_configs[0]["file"] == str(tmp_path / "run" / "supervisor.sock")
    assert opts.server_configs[0]["chmod"] == 0o700


def test_alert_rules_with_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus'; .ci/run "
                    "installs it where apt-get works)")
    res = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=ROOT / "metrics",
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([promtool, "test", "rules", "alerts_test.yml"],
                         cwd=ROOT / "metrics", capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


def test_every_alert_is_listed_in_the_metrics_readme() -> None:
    names = re.findall(r"(?m)^\s*- alert: (\w+)$", (ROOT / "metrics" / "alerts.yml").read_text())
    readme = (ROOT / "metrics" / "README.md").read_text()
    assert len(names) >= 7 and [n for n in names if n not in readme] == []
    words = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    count = words[len(names)] if len(names) < len(words) else str(len(names))
    assert f"{count} alerts" in readme


def test_prometheus_config_with_promtool(tmp_path: Path) -> None:
    """The scrape example is valid as shipped and with its bearer-key lines uncommented."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus'; .ci/run "
                    "installs it where apt-get works)")
    text = (ROOT / "metrics" / "prometheus.yml").read_text()
    keyed = re.sub(r"(?m)^    # (authorization:|  type: Bearer|  credentials_file: )",
                   r"    \1", text)
    assert "\n    authorization:\n      type: Bearer\n      credentials_file: ibhost.key\n" \
        in keyed
    shutil.copy(ROOT / "metrics" / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "ibhost.key").write_text("test-key-0123456789abcdef\n")
    for name, body in (("shipped.yml", text), ("keyed.yml", keyed)):
        (tmp_path / name).write_text(body)
        res = subprocess.run([promtool, "check", "config", name], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr


def test_dashboard_queries_name_real_metrics() -> None:
    dash = json.loads((ROOT / "metrics" / "grafana" / "ibhost-dashboard.json").read_text())
    documented = (ROOT / "docs" / "metrics.md").read_text()

    for panel in dash["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"ibhost_[a-z_]+", target["expr"]):
                base = re.sub(r"_(bucket|count|sum|total)$", "", name)
                assert base in documented, (panel["title"], name)
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for word in ("state", "ib codes", "heartbeat", "latency", "pacing", "restarts"):
        assert word in titles


@pytest.mark.parametrize(("command", "modules"), [
    ("gateway", ["ibhost.gateway.main", "ibhost.gateway.app"]),
    ("watchdog", ["ibhost.watchdog.main", "ibhost.watchdog.core", "ibhost.watchdog.api"]),
    ("events", ["ibhost.watchdog.main"]),
    ("gapfill", ["ibhost.gapfill.main", "ibhost.gapfill.core"]),
    ("ctl", ["ibhost.ctl"]),
])
def test_programs_import_only_what_they_run(command: str, modules: list[str]) -> None:
    """The gateway, watchdog, events listener, gap-filler and ctl load neither numpy,
    pandas, ib_async nor exchange_calendars (the gap-filler loads its calendars when
    it first needs them), nor the progress bars of backfill and bench."""
    code = ("import importlib, sys\nfrom ibhost import cli\n"
            f"cli.build_parser({command!r})\n"
            + "".join(f"importlib.import_module({m!r})\n" for m in modules)
            + "print(sorted(m for m in ('numpy', 'pandas', 'ib_async', 'ib_insync', "
              "'exchange_calendars', 'tqdm', 'rich') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_the_connector_loads_no_progress_bars() -> None:
    code = ("import sys\nfrom ibhost import cli\ncli.build_parser('connector')\n"
            "import ibhost.connector.main\n"
            "print(sorted(m for m in ('tqdm', 'rich') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@given(st.integers(min_value=-2_208_988_800, max_value=4_102_444_799))  # 1900 to 2099
def test_bar_timestamps_are_formatted_as_datetime_formats_them(t: int) -> None:
    """The connector formats each bar's time with its own fast routine: it must give
    exactly what ``datetime.isoformat`` gives, before 1970 too."""
    import datetime as dt

    from ibhost.connector.shapes import iso_utc

    assert iso_utc(t) == dt.datetime.fromtimestamp(t, dt.UTC).isoformat()
