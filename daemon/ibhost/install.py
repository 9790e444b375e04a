"""``ibhost install`` / ``ibhost uninstall``: the OS units that start the supervised tree at
boot and recover it after sleep, written with this installation's absolute paths (the
interpreter running now, the supervisord beside it, the checkout's supervisord.conf, the
home), so nothing is edited by hand and nothing depends on PATH.

systemd: a user unit by default, ``--system`` for a system unit, plus the resume hook (a
system unit: the sleep targets exist only in the system manager). macOS: a launchd plist
(the watchdog sees wake by itself there; launchd/README.md).
"""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNIT = "ibhost.service"
RESUME_UNIT = "ibhost-resume.service"
LABEL = "com.ibhost.supervisord"
SLEEP_TARGETS = ("suspend.target hibernate.target hybrid-sleep.target "
                 "suspend-then-hibernate.target")
SYSTEM_DIR = Path("/etc/systemd/system")
HEADER = "# Written by `ibhost install"
# where a docker.service may live, for each manager (systemd.unit(5), "Unit File Load Path")
SYSTEM_UNIT_PATH = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
                    "/usr/lib/systemd/system", "/lib/systemd/system")
USER_UNIT_PATH = ("~/.config/systemd/user", "/etc/systemd/user", "/usr/local/lib/systemd/user",
                  "/usr/lib/systemd/user")


@dataclass(frozen=True)
class Target:
    """What the units start, every path absolute."""
    python: Path
    supervisord: tuple[str, ...]  # the command that runs supervisord
    conf: Path
    home: Path
    user: str  # the account the tree runs as (User= in system units)


@dataclass
class Plan:
    """The steps of an install or uninstall, in order: ("write", path, text),
    ("home", path, ""), ("run", argv...), ("remove", path, ""), ("note", text, "")."""
    steps: list[tuple[Any, ...]] = field(default_factory=list)

    def run(self, *argv: str, may_fail: bool = False) -> None:
        self.steps.append(("run", list(argv), may_fail))


def find_supervisord(python: Path) -> tuple[str, ...]:
    """The supervisord script beside the interpreter (a venv's bin/), else in its scripts
    directory, else the interpreter running supervisor's module: absolute either way."""
    for folder in (python.parent, Path(sysconfig.get_path("scripts"))):
        exe = folder / "supervisord"
        if exe.is_file() and os.access(exe, os.X_OK):
            return (str(exe),)
    return (str(python), "-m", "supervisor.supervisord")


def find_target(home: str | None, user: str | None = None) -> Target:
    from .tree import supervisord_conf

    user = user or os.environ.get("SUDO_USER") or getpass.getuser()
    if home is None:  # the running account's home, or the --run-as account's
        import pwd

        base = (Path(pwd.getpwnam(user).pw_dir) if user != getpass.getuser()
                else Path.home())
        home = os.environ.get("IBHOST_HOME") or str(base / ".ibhost")
    # not resolved: a venv's bin/python is a symlink that must stay the venv's
    python = Path(sys.executable).absolute()
    return Target(python=python, supervisord=find_supervisord(python),
                  conf=supervisord_conf(), home=Path(home).expanduser().absolute(), user=user)


def _q(value: str, exec_line: bool = True) -> str:
    """One word of a unit file: % (and $ on Exec lines) escaped, quoted if it has spaces."""
    value = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if exec_line:
        value = value.replace("$", "$$")
    return f'"{value}"' if not value or any(c.isspace() for c in value) else value


def _words(args: Iterable[str | Path], exec_line: bool = True) -> str:
    return " ".join(_q(str(a), exec_line) for a in args)


def docker_unit(system: bool, path: Iterable[str] | None = None) -> bool:
    """Whether this manager has a docker.service to order after."""
    dirs = path if path is not None else (SYSTEM_UNIT_PATH if system else USER_UNIT_PATH)
    return any((Path(d).expanduser() / "docker.service").exists() for d in dirs)


def systemd_unit(t: Target, *, system: bool, docker: bool) -> str:
    after = ["network-online.target"] if system else []  # the user manager has no network
    after += ["docker.service"] if docker else []  # only where it exists
    dirs = [t.home / sub for sub in ("run", "log", "data")]
    lines = [HEADER + (" --system" if system else "") + "`, with its installation's paths.",
             "[Unit]",
             "Description=ibhost: the supervised IB API host tree (connector, watchdog, gateway)"]
    if after:
        lines += [f"After={' '.join(after)}", f"Wants={' '.join(after)}"]
    lines += ["", "[Service]", "Type=simple"]
    if system:
        lines.append(f"User={t.user}")
    lines += [f"Environment={_q(f'IBHOST_HOME={t.home}', False)}",
              f"Environment={_q(f'IBHOST_PYTHON={t.python}', False)}",
              f"ExecStartPre={_words(['/bin/mkdir', '-p', *dirs])}",
              f"ExecStartPre={_words(['/bin/chmod', '700', *dirs])}",
              f"ExecStart={_words([*t.supervisord, '-n', '-c', t.conf])}",
              "Restart=always", "RestartSec=5", "KillMode=mixed",
              # supervisord stops each program within its stopwaitsecs (10 s at most)
              "TimeoutStopSec=40"]
    if system and t.home.parent == Path("/var/lib"):  # systemd creates it for User=
        lines += [f"StateDirectory={_q(t.home.name, False)}", "StateDirectoryMode=0700"]
    if system:
        lines += ["NoNewPrivileges=true", "PrivateTmp=true", "ProtectSystem=strict",
                  f"ReadWritePaths={_q(str(t.home), False)}"]
    lines += ["", "[Install]", f"WantedBy={'multi-user.target' if system else 'default.target'}"]
    return "\n".join(lines) + "\n"


def resume_unit(t: Target) -> str:
    """After suspend or hibernate, ``ibhost ctl wake``: the connector reconnects at once."""
    wake = _words([t.python, "-m", "ibhost.cli", "ctl", "wake", "--source", "systemd-resume"])
    return "\n".join([
        HEADER + "` (a system unit whatever the tree's: the sleep targets are system-wide).",
        "[Unit]", "Description=ibhost: reconnect to IB after resume", f"After={SLEEP_TARGETS}",
        "", "[Service]", "Type=oneshot", f"User={t.user}",
        f"Environment={_q(f'IBHOST_HOME={t.home}', False)}",
        f"ExecStart={wake}",
        "", "[Install]", f"WantedBy={SLEEP_TARGETS}", ""])


def launchd_plist(t: Target, *, system: bool) -> bytes:
    import plistlib

    data: dict[str, Any] = {
        "Label": LABEL,
        "ProgramArguments": [*t.supervisord, "-n", "-c", str(t.conf)],  # launchd owns it
        "EnvironmentVariables": {"IBHOST_HOME": str(t.home), "IBHOST_PYTHON": str(t.python)},
        "RunAtLoad": True, "KeepAlive": True, "ThrottleInterval": 10,
        "StandardOutPath": str(t.home / "log" / "launchd.out.log"),
        "StandardErrorPath": str(t.home / "log" / "launchd.err.log")}
    if system:
        data["UserName"] = t.user
    return plistlib.dumps(data)


def _systemctl(system: bool, *args: str) -> list[str]:
    return ["systemctl", *([] if system else ["--user"]), *args]


def _resume_hook(t: Target, plan: Plan, system: bool, unit_dir: Path | None,
                 install: bool) -> None:
    """The resume unit is a system unit whatever the tree's: written where we may."""
    where = unit_dir or SYSTEM_DIR
    if not system and unit_dir is None and not os.access(where, os.W_OK):
        verb = "install" if install else "uninstall"
        plan.steps.append(("note", f"the resume hook is a system unit ({SLEEP_TARGETS.split()[0]} "
                           f"is system-wide); as root: sudo {shlex.quote(str(t.python))} -m "
                           f"ibhost.cli {verb} --resume-only --run-as {shlex.quote(t.user)} "
                           f"--home {shlex.quote(str(t.home))}", ""))
        return
    path = where / RESUME_UNIT
    if install:
        plan.steps.append(("write", path, resume_unit(t)))
        plan.run("systemctl", "daemon-reload")
        plan.run("systemctl", "enable", RESUME_UNIT)
    else:
        plan.run("systemctl", "disable", RESUME_UNIT, may_fail=True)
        plan.steps.append(("remove", path, ""))
        plan.run("systemctl", "daemon-reload", may_fail=True)


def plan_systemd(t: Target, *, install: bool, system: bool, resume: bool = True,
                 tree: bool = True, unit_dir: Path | None = None,
                 docker: bool | None = None) -> Plan:
    plan = Plan()
    where = unit_dir or (SYSTEM_DIR if system else Path.home() / ".config/systemd/user")
    if tree and install:
        docker = docker_unit(system) if docker is None else docker
        plan.steps.append(("home", t.home, ""))
        plan.steps.append(("write", where / UNIT, systemd_unit(t, system=system, docker=docker)))
        plan.run(*_systemctl(system, "daemon-reload"))
        plan.run(*_systemctl(system, "enable", UNIT))
        plan.run(*_systemctl(system, "restart", UNIT))  # a re-install runs the new unit
        if not system:
            plan.steps.append(("note", "to run at boot and while logged out: loginctl "
                               f"enable-linger {shlex.quote(t.user)}", ""))
            if docker_unit(True) and not docker:
                plan.steps.append(("note", "a user unit cannot order itself after the system's "
                                   "docker.service; --system can", ""))
    elif tree:
        plan.run(*_systemctl(system, "disable", "--now", UNIT), may_fail=True)
        plan.steps.append(("remove", where / UNIT, ""))
        plan.run(*_systemctl(system, "daemon-reload"), may_fail=True)
    if resume:
        _resume_hook(t, plan, system, unit_dir, install)
    if not install and tree:
        plan.steps.append(("note", f"{t.home} (configuration, data, logs) is kept", ""))
    return plan


def plan_launchd(t: Target, *, install: bool, system: bool,
                 unit_dir: Path | None = None) -> Plan:
    plan = Plan()
    where = unit_dir or (Path("/Library/LaunchDaemons") if system
                         else Path.home() / "Library/LaunchAgents")
    path = where / f"{LABEL}.plist"
    domain = "system" if system else f"gui/{os.getuid()}"
    plan.run("launchctl", "bootout", f"{domain}/{LABEL}", may_fail=True)  # not loaded: fine
    if install:
        plan.steps.append(("home", t.home, ""))
        plan.steps.append(("write", path, launchd_plist(t, system=system).decode()))
        plan.run("launchctl", "bootstrap", domain, str(path))
        plan.steps.append(("note", "wake needs no hook on macOS: the watchdog sees the clock "
                           "jump (launchd/README.md)", ""))
    else:
        plan.steps.append(("remove", path, ""))
        plan.steps.append(("note", f"{t.home} (configuration, data, logs) is kept", ""))
    return plan


def apply(plan: Plan, t: Target, *, dry_run: bool, out: Callable[[str], None] = print,
          runner: Callable[..., Any] = subprocess.run) -> int:
    """Carry the plan out, or with ``dry_run`` print it and change nothing."""
    would = "would " if dry_run else ""
    for kind, what, extra in plan.steps:
        if kind == "note":
            out(f"note: {what}")
        elif kind == "home":
            out(f"{would}create {what}/{{run,log,data}} (mode 0700)")
            if not dry_run:
                from .tree import prepare_home

                prepare_home(what)
                if os.geteuid() == 0 and t.user != "root":  # a system unit's account
                    import shutil

                    for p in (what, *(what / s for s in ("run", "log", "data"))):
                        shutil.chown(p, t.user)
        elif kind == "write":
            out(f"{would}write {what}:")
            out("".join(f"    {line}\n" for line in extra.splitlines()).rstrip("\n"))
            if not dry_run:
                try:
                    what.parent.mkdir(parents=True, exist_ok=True)
                    what.write_text(extra)
                except OSError as e:
                    out(f"  failed: {e}")
                    return 1
        elif kind == "remove":
            out(f"{would}remove {what}" + ("" if what.exists() else " (not present)"))
            if not dry_run:
                try:
                    what.unlink(missing_ok=True)
                except OSError as e:
                    out(f"  failed: {e}")
                    return 1
        elif kind == "run":
            out(f"{would}run: {shlex.join(what)}")
            if not dry_run:
                try:
                    res = runner(what, capture_output=True, text=True, timeout=120)
                except FileNotFoundError:
                    res = None
                if res is None or res.returncode != 0:
                    why = "not found" if res is None else (res.stderr or res.stdout).strip()
                    out(f"  failed: {why}")
                    if not extra:
                        return 1
    return 0


def add_parser(sub: Any) -> None:
    for name, what in (("install", "write and enable the OS units that start the tree at "
                        "boot (systemd, or launchd on macOS)"),
                       ("uninstall", "disable and remove what `ibhost install` wrote")):
        p = sub.add_parser(name, help=what, description=what)
        p.add_argument("--home", default=None, help="ibhost home (default $IBHOST_HOME or "
                                                    "~/.ibhost)")
        p.add_argument("--system", action="store_true",
                       help="a system unit (LaunchDaemon on macOS) instead of a user unit")
        p.add_argument("--run-as", default=None, metavar="USER",
                       help="the account of a system unit and of the resume hook "
                            "(default: the one that ran sudo, else this one)")
        p.add_argument("--init", choices=("systemd", "launchd"),
                       default="launchd" if sys.platform == "darwin" else "systemd",
                       help="the service manager (default: this platform's)")
        p.add_argument("--unit-dir", type=Path, default=None, help="write the units here "
                       "instead of the manager's directory")
        p.add_argument("--no-resume", action="store_true", help="without the resume hook")
        p.add_argument("--resume-only", action="store_true",
                       help="only the resume hook (a system unit; for a user install)")
        p.add_argument("--dry-run", action="store_true",
                       help="print the files and commands, change nothing")
        p.set_defaults(func=run, install=name == "install")


def run(args: argparse.Namespace) -> int:
    from .config import ConfigError

    try:
        t = find_target(args.home, args.run_as)
        from .tree import check_home

        check_home(t.home)
    except KeyError:
        print(f"ibhost install: no account named {args.run_as!r}", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"ibhost {'install' if args.install else 'uninstall'}: {e}", file=sys.stderr)
        return 2
    if args.init == "launchd":
        plan = plan_launchd(t, install=args.install, system=args.system,
                            unit_dir=args.unit_dir)
    else:
        plan = plan_systemd(t, install=args.install, system=args.system or args.resume_only,
                            resume=not args.no_resume, tree=not args.resume_only,
                            unit_dir=args.unit_dir)
    return apply(plan, t, dry_run=args.dry_run)
