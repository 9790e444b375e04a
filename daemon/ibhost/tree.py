"""The supervised tree: locate supervisord.conf, prepare a home, start/stop supervisord,
and talk to it over its XML-RPC socket (for ``ibhost ctl`` and ``ibhost demo``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any

PROGRAMS = ("connector", "gapfill", "watchdog", "gateway")


def supervisord_conf() -> Path:
    """The repository's supervisord.conf (the package is installed from the checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "supervisord.conf"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("supervisord.conf not found next to the ibhost checkout")


# a Unix socket's path is at most 107 bytes; supervisord binds "<socket>.<pid>" first
SOCKET_PATH_MAX = 107 - len(".4194304")


def check_home(home: Path) -> None:
    longest = os.fsencode(home / "run" / "supervisor.sock")
    if len(longest) > SOCKET_PATH_MAX:
        from .config import ConfigError

        raise ConfigError("IBHOST_HOME", f"{home} is too long for the Unix sockets under "
                          f"run/ ({len(longest)} bytes for run/supervisor.sock, at most "
                          f"{SOCKET_PATH_MAX}); choose a shorter home", "--home")


def prepare_home(home: Path) -> None:
    """The home's directories, owner-only (logs name the account and the orders)."""
    check_home(home)
    home.mkdir(parents=True, exist_ok=True)
    for sub in ("run", "log", "data"):
        (home / sub).mkdir(exist_ok=True, mode=0o700)
        os.chmod(home / sub, 0o700)


def tree_env(home: Path, python: str = sys.executable) -> dict[str, str]:
    env = dict(os.environ)
    env["IBHOST_HOME"] = str(home)
    env["IBHOST_PYTHON"] = python
    return env


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_owner() -> None:
    """In the child, before supervisord starts (Linux): SIGTERM to it when the thread
    that started it ends, so a tree started by ``ibhost demo``, ``bench``, ``soak`` or
    a test stops with its owner even when the owner is killed without cleaning up
    (a test run stopped with SIGTERM left its supervisord and programs running).
    Elsewhere a no-op: the owner's own clean-up stops the tree."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


async def start_supervisord(home: Path, *, conf: Path | None = None,
                            python: str = sys.executable) -> asyncio.subprocess.Process:
    """supervisord in its own session, stopped when its owner goes (``_die_with_owner``);
    the units under launchd/ and systemd/ start it directly instead."""
    prepare_home(home)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "supervisor.supervisord", "-n", "-c",
        str(conf or supervisord_conf()), env=tree_env(home, python),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True, preexec_fn=_die_with_owner)


async def stop_supervisord(proc: asyncio.subprocess.Process, timeout: float = 30.0) -> int:
    """SIGTERM to supervisord stops every program (stopwaitsecs each), then itself."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # our own session only
            await proc.wait()
    return proc.returncode or 0


class Supervisor:
    """XML-RPC to supervisord's Unix socket (HOME/run/supervisor.sock)."""

    def __init__(self, home: Path) -> None:
        from supervisor.xmlrpc import SupervisorTransport

        url = f"unix://{home / 'run' / 'supervisor.sock'}"
        self.proxy: Any = xmlrpc.client.ServerProxy(
            "http://127.0.0.1", transport=SupervisorTransport(None, None, url))

    def processes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.proxy.supervisor.getAllProcessInfo()
        return result

    def process(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.proxy.supervisor.getProcessInfo(name)
        return result

    def tail(self, name: str, length: int = 4000) -> str:
        text, _offset, _overflow = self.proxy.supervisor.tailProcessStdoutLog(name, 0, length)
        return str(text)

    def restart(self, name: str) -> None:
        with contextlib.suppress(xmlrpc.client.Fault):
            self.proxy.supervisor.stopProcess(name)
        self.proxy.supervisor.startProcess(name)


def programs(home: Path) -> dict[str, Any]:
    """Each supervised program's state from supervisord, or ``{"error": ...}``."""
    try:
        procs = Supervisor(home).processes()
    except Exception as e:
        return {"error": f"supervisord not reachable: {e}"}
    return {p["name"]: {"state": p["statename"], "pid": p["pid"] or None,
                        "description": p["description"],
                        "startedAt": p["start"] or None,
                        "exitStatus": p["exitstatus"]} for p in procs}
