"""``ibhost demo`` as a user runs it: a real process tree, its output, its clean-up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def _processes_mentioning(text: str) -> list[int]:
    """Our own processes whose command line or environment names ``text``."""
    me = os.getpid()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            blob = (d / "cmdline").read_bytes() + (d / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            found.append(int(d.name))
    return found


def _wait_gone(text: str, timeout: float = 30.0) -> list[int]:
    end = time.monotonic() + timeout
    while (left := _processes_mentioning(text)) and time.monotonic() < end:
        time.sleep(0.2)
    return left


@pytest.fixture
def tmp_short() -> Iterator[Path]:
    """A short temporary directory (Unix socket paths are limited to 107 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="ibd-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _demo(tmp_path: Path, *args: str,
          stdout: int | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the temp home is made in here
    return subprocess.Popen([sys.executable, "-m", "ibhost.cli", "demo", *args],
                            stdout=stdout, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)


def _time_wait_port() -> int:
    """A loopback port left in TIME_WAIT by a server like the gateway (SO_REUSEADDR,
    as aiohttp binds) that closed first; nothing listening."""
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = int(srv.getsockname()[1])
        cli = socket.create_connection(("127.0.0.1", port))
        conn, _ = srv.accept()
        conn.close()  # the active close: this side (port) goes to TIME_WAIT
        time.sleep(0.05)
        cli.close()
    return port


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_demo_runs_says_where_and_leaves_nothing_behind(tmp_short: Path) -> None:
    tmp_path = tmp_short
    tw = _time_wait_port()
    with socket.socket() as probe:  # TIME_WAIT really blocks a plain bind here
        try:
            probe.bind(("127.0.0.1", tw))
            plain_bind_blocked = False
        except OSError:
            plain_bind_blocked = True
    p = _demo(tmp_path, "--http-port", str(tw))
    assert p.stdout is not None and p.stderr is not None
    lines: list[str] = []
    try:
        end = time.monotonic() + 90
        while time.monotonic() < end:
            line = p.stdout.readline().decode()
            if not line:
                break
            lines.append(line)
            if line.startswith("ready."):
                break
        text = "".join(lines)
        assert "ready." in text, text + p.stderr.read().decode()
        home = Path(lines[0].split("home ", 1)[1].split(" ")[0].strip())
        assert home.parent == tmp_path and (home / "ibhost.toml").exists()
        # a port left in TIME_WAIT by an earlier run is reused, not silently moved
        assert "is taken" not in text, (plain_bind_blocked, text)
        with urllib.request.urlopen(f"http://127.0.0.1:{tw}/health", timeout=5) as r:
            assert json.loads(r.read())["status"] in ("ok", "degraded")
        assert _processes_mentioning(str(home))
    finally:
        p.send_signal(signal.SIGINT)
        rest = p.communicate(timeout=60)[0].decode()
    assert p.returncode == 0 and "stopped." in rest
    assert _wait_gone(str(home)) == []
    # the temporary home held the API key: it is gone with the demo
    assert not home.exists()


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_demo_piped_into_head_stops_everything_it_started(tmp_short: Path) -> None:
    tmp_path = tmp_short
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        r, w = os.pipe()
        p = _demo(tmp_path, "--http-port", str(port), stdout=w)
        os.close(w)
        with os.fdopen(r, "rb") as reader:  # `| head -2`: read two lines, then go away
            first = reader.readline().decode()
            second = reader.readline().decode()
        home = Path(first.split("home ", 1)[1].split(" ")[0].strip())
        # a port really taken is said, with the one used instead
        assert f"port {port} is taken" in second, second
        _stopped_by_its_reader(p, home)


def _stopped_by_its_reader(p: subprocess.Popen[bytes], home: Path) -> None:
    """The demo saw its output go, said so, and left nothing behind."""
    assert p.stderr is not None
    err = p.communicate(timeout=90)[1].decode()
    assert "Traceback" not in err, err
    assert "standard output closed" in err
    assert p.returncode == 0
    assert _wait_gone(str(home)) == [], "the simulator or the tree outlived the demo"
    assert not home.exists()


def test_demo_home_too_long_for_unix_sockets_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / ("h" * 100)
    p = subprocess.run([sys.executable, "-m", "ibhost.cli", "demo", "--home", str(home)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "too long for the Unix sockets" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_demo_stops_when_its_reader_leaves_after_the_last_line(tmp_short: Path) -> None:
    """`ibhost demo | head -3`: the third line is in the last block the demo prints,
    so no write of its fails; it still sees the reader go and stops everything."""
    tmp_path = tmp_short
    r, w = os.pipe()
    p = _demo(tmp_path, "--http-port", str(_time_wait_port()), stdout=w)
    os.close(w)
    with os.fdopen(r, "rb") as reader:
        lines = [reader.readline().decode() for _ in range(3)]
        home = Path(lines[0].split("home ", 1)[1].split(" ")[0].strip())
        assert "events listener" in lines[1] and "gap-filler" in lines[1], lines
        assert lines[2] == "\n", lines  # the ready block begins with a blank line
        for _ in range(50):  # the block is written whole before the reader goes
            line = reader.readline().decode()
            if not line or line.startswith("Ctrl-C stops everything"):
                break
        assert line.startswith("Ctrl-C stops everything"), line
    _stopped_by_its_reader(p, home)
