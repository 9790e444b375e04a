"""``ibhost install`` / ``uninstall``: units with this installation's real, absolute paths,
valid for systemd and launchd; ``--dry-run`` changes nothing. No real service is touched:
units go to temporary directories and systemctl/launchctl are recorded, never run."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from ibhost import install
from ibhost.install import RESUME_UNIT, UNIT, Target

ROOT = Path(__file__).resolve().parent.parent


class Recorder:
    """Stands in for subprocess.run: records each command, fails those named."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.argv: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.argv.append(argv)
        code = 1 if any(f in argv for f in self.fail) else 0
        return subprocess.CompletedProcess(argv, code, "", "boom" if code else "")


def target(tmp_path: Path, home: str = "home") -> Target:
    return install.find_target(str(tmp_path / home))


def installed(tmp_path: Path, *, system: bool, docker: bool, home: str = "home") -> Path:
    """Carry out an install into tmp_path/units (commands recorded); the unit directory."""
    units = tmp_path / "units"
    t = target(tmp_path, home)
    plan = install.plan_systemd(t, install=True, system=system, unit_dir=units, docker=docker)
    runner = Recorder()
    assert install.apply(plan, t, dry_run=False, out=lambda s: None, runner=runner) == 0
    ctl = ["systemctl"] + ([] if system else ["--user"])
    assert [[*ctl, "daemon-reload"], [*ctl, "enable", UNIT], [*ctl, "restart", UNIT]] \
        == runner.argv[:3]
    assert ["systemctl", "enable", RESUME_UNIT] in runner.argv
    assert (t.home / "run").is_dir() and (t.home / "run").stat().st_mode & 0o077 == 0
    return units


def verify(unit: Path, user: bool, tmp_path: Path) -> None:
    """``systemd-analyze verify`` offline: it loads the unit in a manager of its own, checks
    every directive and that each Exec path is an executable. A user manager needs only a
    runtime directory (XDG_RUNTIME_DIR) to start without systemd as PID 1."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package 'systemd')")
    # short: the user manager loads the system's user sockets (gpg-agent's) under this
    # directory, and a Unix socket path over 108 bytes is "a bad unit file setting"
    with tempfile.TemporaryDirectory(prefix="xdg", dir="/tmp") as runtime:
        os.chmod(runtime, 0o700)
        env = {**os.environ, "XDG_RUNTIME_DIR": runtime}
        res = subprocess.run([analyze, *(["--user"] if user else []), "--man=no", "verify",
                              str(unit)], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), \
        unit.read_text() + res.stdout + res.stderr


@pytest.mark.parametrize("system", [False, True], ids=["user", "system"])
@pytest.mark.parametrize("docker", [False, True], ids=["no-docker", "docker"])
def test_generated_units_verify(system: bool, docker: bool, tmp_path: Path) -> None:
    units = installed(tmp_path, system=system, docker=docker)
    text = (units / UNIT).read_text()
    assert ("docker.service" in text) is docker
    if docker:
        assert "\nAfter=" in text and "docker.service" in text.split("\nWants=")[1].split("\n")[0]
    verify(units / UNIT, not system, tmp_path)
    verify(units / RESUME_UNIT, False, tmp_path)  # the resume hook is a system unit


def test_units_name_this_installation(tmp_path: Path) -> None:
    """Absolute paths only: this interpreter, the supervisord beside it, this checkout's
    supervisord.conf, the chosen home. Nothing is looked up on PATH at boot."""
    t = target(tmp_path)
    text = install.systemd_unit(t, system=False, docker=False)
    start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    exe = start.removeprefix("ExecStart=").split()[0]
    assert Path(exe).is_absolute() and os.access(exe, os.X_OK)
    assert f"-n -c {ROOT / 'supervisord.conf'}" in start
    assert f"Environment=IBHOST_PYTHON={sys.executable}" in text
    assert f"Environment=IBHOST_HOME={tmp_path / 'home'}" in text
    if (Path(sys.executable).parent / "supervisord").exists():  # a venv's bin/, or pip's
        assert exe == str(Path(sys.executable).parent / "supervisord")
    for line in text.splitlines():
        if line.startswith("Exec"):
            assert line.split("=", 1)[1].split()[0].startswith("/"), line
    wake = install.resume_unit(t)
    assert f"ExecStart={sys.executable} -m ibhost.cli ctl wake" in wake
    assert "/opt/ibhost" not in text + wake and "%h" not in text + wake


@pytest.fixture
def short_tmp() -> Any:
    """A short temporary directory: a home's sockets must fit in 108 bytes, and
    pytest's own paths grow with its run counter (pytest-111/popen-gw0/...)."""
    d = Path(tempfile.mkdtemp(prefix="ih", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_paths_with_spaces_and_percent_are_quoted(short_tmp: Path) -> None:
    assert install._q("/a b%c$d") == '"/a b%%c$$d"'
    assert install._q("/a%b", exec_line=False) == "/a%%b"
    tmp_path = short_tmp
    units = installed(tmp_path, system=True, docker=False, home="my home")
    text = (units / UNIT).read_text()
    assert f'Environment="IBHOST_HOME={tmp_path / "my home"}"' in text
    assert f'ReadWritePaths="{tmp_path / "my home"}"' in text
    verify(units / UNIT, False, tmp_path)


def test_docker_ordering_only_where_docker_is(tmp_path: Path) -> None:
    assert not install.docker_unit(True, [str(tmp_path)])
    (tmp_path / "docker.service").write_text("[Service]\nExecStart=/bin/true\n")
    assert install.docker_unit(True, [str(tmp_path / "nowhere"), str(tmp_path)])
    t = target(tmp_path)
    with_docker = install.systemd_unit(t, system=True, docker=True)
    assert "After=network-online.target docker.service\n" in with_docker
    assert "Wants=network-online.target docker.service\n" in with_docker
    assert "docker.service" not in install.systemd_unit(t, system=True, docker=False)


@pytest.mark.parametrize("system", [False, True], ids=["agent", "daemon"])
def test_launchd_plist_parses_and_names_real_paths(system: bool, tmp_path: Path) -> None:
    t = target(tmp_path)
    plan = install.plan_launchd(t, install=True, system=system, unit_dir=tmp_path / "agents")
    runner = Recorder(fail=("bootout",))  # not loaded yet: bootout fails, install goes on
    assert install.apply(plan, t, dry_run=False, out=lambda s: None, runner=runner) == 0
    path = tmp_path / "agents" / "com.ibhost.supervisord.plist"
    domain = "system" if system else f"gui/{os.getuid()}"
    assert runner.argv[-1] == ["launchctl", "bootstrap", domain, str(path)]
    data = plistlib.loads(path.read_bytes())
    assert data["Label"] == "com.ibhost.supervisord"
    assert data["RunAtLoad"] is True and data["KeepAlive"] is True
    args = data["ProgramArguments"]
    assert Path(args[0]).is_absolute() and os.access(args[0], os.X_OK)
    assert args[-3:] == ["-n", "-c", str(ROOT / "supervisord.conf")]
    assert Path(args[-1]).is_file()
    env = data["EnvironmentVariables"]
    assert env == {"IBHOST_HOME": str(t.home), "IBHOST_PYTHON": sys.executable}
    assert Path(env["IBHOST_PYTHON"]).is_file()
    # launchd opens the logs before supervisord runs: their directory exists
    assert Path(data["StandardOutPath"]).parent.is_dir()
    assert ("UserName" in data) is system


def test_dry_run_writes_and_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "fakehome"))
    t = target(tmp_path)

    def never(*a: Any, **k: Any) -> None:
        raise AssertionError("a dry run ran a command")

    printed: list[str] = []
    for plan in (install.plan_systemd(t, install=True, system=False),
                 install.plan_systemd(t, install=True, system=True),
                 install.plan_launchd(t, install=True, system=False)):
        assert install.apply(plan, t, dry_run=True, out=printed.append, runner=never) == 0
    assert list(tmp_path.iterdir()) == []
    out = "\n".join(printed)
    assert f"would write {tmp_path}/fakehome/.config/systemd/user/ibhost.service:" in out
    assert "would write /etc/systemd/system/ibhost.service:" in out
    assert "would run: systemctl --user enable ibhost.service" in out
    assert "would run: systemctl enable ibhost-resume.service" in out
    assert f"would write {tmp_path}/fakehome/Library/LaunchAgents/" in out
    assert f"    ExecStart={t.supervisord[0]} -n -c" in out  # the file's text, indented


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home)}
    env.pop("IBHOST_HOME", None)
    return subprocess.run([sys.executable, "-m", "ibhost.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_cli_dry_run_and_uninstall_dry_run(short_tmp: Path) -> None:
    tmp_path = short_tmp
    units = tmp_path / "units"
    res = cli("install", "--dry-run", "--unit-dir", str(units), home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"would write {units}/ibhost.service:" in res.stdout
    assert f"would create {tmp_path}/.ibhost/{{run,log,data}}" in res.stdout
    assert list(tmp_path.iterdir()) == []  # not the units, not the home

    res = cli("uninstall", "--dry-run", "--unit-dir", str(units), home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "would run: systemctl --user disable --now ibhost.service" in res.stdout
    assert f"would remove {units}/ibhost.service (not present)" in res.stdout
    assert f"would remove {units}/ibhost-resume.service (not present)" in res.stdout
    assert "is kept" in res.stdout

    installed(tmp_path, system=False, docker=False)
    res = cli("uninstall", "--dry-run", "--unit-dir", str(units), home=tmp_path)
    assert f"would remove {units}/ibhost.service\n" in res.stdout
    assert (units / UNIT).exists() and (units / RESUME_UNIT).exists()

    res = cli("uninstall", "--dry-run", "--init", "launchd", home=tmp_path)
    assert "would run: launchctl bootout" in res.stdout
    assert f"would remove {tmp_path}/Library/LaunchAgents/com.ibhost.supervisord.plist" \
        in res.stdout


def test_uninstall_removes_what_install_wrote(tmp_path: Path) -> None:
    units = installed(tmp_path, system=False, docker=False)
    t = target(tmp_path)
    runner = Recorder(fail=("disable",))  # already disabled: uninstall goes on
    plan = install.plan_systemd(t, install=False, system=False, unit_dir=units)
    assert install.apply(plan, t, dry_run=False, out=lambda s: None, runner=runner) == 0
    assert list(units.iterdir()) == []
    assert ["systemctl", "--user", "disable", "--now", UNIT] in runner.argv
    assert (t.home / "run").is_dir()  # the home (config, data, logs) stays


def test_a_failed_command_stops_the_install(tmp_path: Path) -> None:
    t = target(tmp_path)
    plan = install.plan_systemd(t, install=True, system=False, unit_dir=tmp_path / "u")
    printed: list[str] = []
    runner = Recorder(fail=("enable",))
    assert install.apply(plan, t, dry_run=False, out=printed.append, runner=runner) == 1
    assert printed[-1] == "  failed: boom"
    assert ["systemctl", "--user", "restart", UNIT] not in runner.argv


def test_user_install_without_root_names_the_resume_hook_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install.os, "access", lambda *a: False)  # /etc/systemd not writable
    t = target(tmp_path)
    plan = install.plan_systemd(t, install=True, system=False)
    notes = [s[1] for s in plan.steps if s[0] == "note"]
    assert any(f"sudo {sys.executable} -m ibhost.cli install --resume-only --run-as {t.user} "
               f"--home {t.home}" in n for n in notes)
    assert not any(s[0] == "write" and s[1].name == RESUME_UNIT for s in plan.steps)


# The units shipped in systemd/ and launchd/ are what `ibhost install` writes for a
# checkout and venv in /opt/ibhost (the generator is the one copy; these are its examples).
OPT = Path("/opt/ibhost")
EXAMPLE = {"python": OPT / "venv/bin/python",
           "supervisord": (str(OPT / "venv/bin/python"), "-m", "supervisor.supervisord"),
           "conf": OPT / "supervisord.conf"}
USER_EXAMPLE = Target(**EXAMPLE, home=Path("/home/you/.ibhost"), user="you")  # type: ignore[arg-type]
SYSTEM_EXAMPLE = Target(**EXAMPLE, home=Path("/var/lib/ibhost"), user="ibhost")  # type: ignore[arg-type]


def examples() -> dict[str, bytes]:
    return {
        "systemd/ibhost.service":
            install.systemd_unit(USER_EXAMPLE, system=False, docker=False).encode(),
        "systemd/ibhost-system.service":
            install.systemd_unit(SYSTEM_EXAMPLE, system=True, docker=False).encode(),
        "systemd/ibhost-resume.service": install.resume_unit(SYSTEM_EXAMPLE).encode(),
        "launchd/com.ibhost.supervisord.plist":
            install.launchd_plist(USER_EXAMPLE, system=False)}


@pytest.mark.parametrize("name", sorted(examples()))
def test_shipped_units_are_what_install_writes(name: str) -> None:
    """A shipped unit is the generator's output for the example paths, after any comment
    lines of its own (regenerate: IBHOST_WRITE_EXAMPLES=1 pytest tests/test_install.py)."""
    expected = examples()[name]
    path = ROOT / name
    if os.environ.get("IBHOST_WRITE_EXAMPLES") == "1":
        path.write_bytes(expected)
    shipped = path.read_bytes()
    assert shipped.endswith(expected), expected.decode()
    assert all(line.startswith(b"#") for line in shipped[:-len(expected)].splitlines())


def test_install_imports_only_what_it_runs() -> None:
    code = ("import sys\nfrom ibhost import cli\ncli.build_parser('install')\n"
            "cli.build_parser('uninstall')\nimport ibhost.install, ibhost.tree\n"
            "print(sorted(m for m in ('numpy', 'pandas', 'ib_async', 'aiohttp', "
            "'exchange_calendars') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
