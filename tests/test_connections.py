"""Connection hygiene at the gateway's TCP listener: late headers, slow bodies, idle
connections, the per-client cap, and the open-files limit (real sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import resource
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ibhost import config
from ibhost.gateway.keys import METRICS_KEY as METRICS
from ibhost.gateway.main import Gateway

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
WAIT = 30.0  # generous: a loaded machine is slow, never this slow


def gateway_config(home: Path, **overrides: Any) -> config.Config:
    values = {"gateway.port": 0, "ib.port": 1, **{k.replace("__", "."): v
                                                  for k, v in overrides.items()}}
    return config.load(home=home, env={}, overrides=values)


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **overrides: Any) -> AsyncIterator[Gateway]:
    async with Gateway(gateway_config(tmp_path, **overrides)) as gw:
        yield gw


@contextlib.asynccontextmanager
async def sockets(port: int) -> AsyncIterator[list[Conn]]:
    """Client connections the test opens; every one is closed on the way out."""
    conns: list[Conn] = []
    try:
        yield conns
    finally:
        for _, w in conns:
            w.close()
        for _, w in conns:
            with contextlib.suppress(Exception):
                await w.wait_closed()


async def connect(port: int, conns: list[Conn]) -> Conn:
    pair = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT)
    conns.append(pair)
    return pair


async def get(port: int, path: str, source: str = "127.0.0.1") -> tuple[int, Any]:
    """One request on a fresh connection from ``source``: the status and the JSON
    body."""
    r, w = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0)), WAIT)
    try:
        w.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                .encode())
        raw = await asyncio.wait_for(r.read(), WAIT)
    finally:
        w.close()
    return parse(raw)


def dropped(gw: Gateway, reason: str) -> float | None:
    return gw.app[METRICS].registry.get_sample_value(
        "ibhost_gateway_connections_dropped_total", {"reason": reason})


def parse(raw: bytes) -> tuple[int, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def closed_by_server(r: asyncio.StreamReader) -> bytes:
    """What the server sent before it closed (a reset counts as closed)."""
    try:
        return await asyncio.wait_for(r.read(), WAIT)
    except ConnectionError:
        return b""


async def test_headers_sent_a_byte_at_a_time_are_cut_off(tmp_path: Path) -> None:
    """Slowloris: every connection still sending its headers after header_timeout is
    closed; a normal request meanwhile is answered. keepalive_timeout is long, so it is
    the header deadline that closes them."""
    async with running(tmp_path, gateway__header_timeout=1,
                       gateway__keepalive_timeout=600) as gw, sockets(gw.port) as conns:
        loop = asyncio.get_running_loop()
        for _ in range(20):
            await connect(gw.port, conns)
        request = b"GET /ping HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"a" * 10_000

        async def trickle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> float:
            t0 = loop.time()
            for byte in request:  # far longer than the timeout at 20 bytes a second
                if r.at_eof():
                    break
                try:
                    w.write(bytes([byte]))
                    await w.drain()
                except ConnectionError:
                    break
                await asyncio.sleep(0.05)
            await closed_by_server(r)
            return loop.time() - t0

        slow = [asyncio.ensure_future(trickle(r, w)) for r, w in conns]
        status, body = await get(gw.port, "/ping")
        assert status == 200 and body["pong"] is True
        held = await asyncio.wait_for(asyncio.gather(*slow), 120)
        # closed at the deadline, not before it, and not at the end of their headers
        assert all(1.0 <= t < 400 * 0.05 for t in held), held
        assert dropped(gw, "header_timeout") == 20


async def test_an_idle_connection_is_closed_after_keepalive_timeout(tmp_path: Path) -> None:
    async with running(tmp_path, gateway__keepalive_timeout=1,
                       gateway__header_timeout=600) as gw, sockets(gw.port) as conns:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        never, _ = await connect(gw.port, conns)  # never sends a request
        assert await closed_by_server(never) == b""
        r, w = await connect(gw.port, conns)  # idle after one answer
        w.write(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = await closed_by_server(r)
        assert answer.startswith(b"HTTP/1.1 200") and loop.time() - t0 >= 1.0


async def test_a_body_that_does_not_arrive_is_a_408(tmp_path: Path) -> None:
    async with running(tmp_path, gateway__body_timeout=1) as gw, \
            sockets(gw.port) as conns:
        for path, family in (("/v1/data/validate", "ibhost"), ("/option-quote", "bridge"),
                             ("/data/validate", "ktrdr")):
            r, w = await connect(gw.port, conns)
            w.write(f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                    "application/json\r\nContent-Length: 100\r\n\r\n{\"sym".encode())
            status, body = parse(await closed_by_server(r))
            assert status == 408, body
            text = body["detail"] if family == "ktrdr" else (
                body["error"] if family == "bridge" else body["error"]["message"])
            assert "did not arrive within 1 s" in text, body


async def test_past_the_per_client_cap_a_503_says_why(tmp_path: Path) -> None:
    async with running(tmp_path, gateway__max_connections_per_client=5) as gw, \
            sockets(gw.port) as conns:
        for _ in range(5):
            await connect(gw.port, conns)
        r, w = await connect(gw.port, conns)
        w.write(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        raw = await closed_by_server(r)
        status, body = parse(raw)
        assert status == 503 and b"Retry-After: 1" in raw
        err = body["error"]
        assert err["code"] == "overloaded" and err["reason"] == "connection_limit"
        assert err["limit"] == 5 and "max_connections_per_client" in err["message"]
        for _, held in conns[:5]:
            held.close()
        # the slots are free again once the server has seen the closes
        for _ in range(100):
            status, _body = await get(gw.port, "/ping")
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200
        assert dropped(gw, "client_limit") >= 1


# --- a real gateway process under a file-descriptor limit -------------------------

PRLIMIT = shutil.which("prlimit")
IDLE = 2000


def _own_fd_room() -> None:
    """The test holds 2,000 sockets itself: raise its own soft limit, or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE + 500:
        pytest.skip(f"this test needs {IDLE + 500} open files (hard limit {hard})")
    want = IDLE + 500 if hard == resource.RLIM_INFINITY else min(hard, IDLE + 4000)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@contextlib.asynccontextmanager
async def gateway_process(home: Path, nofile: str, *sets: str
                          ) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, Path]]:
    """``prlimit --nofile=soft:hard ibhost gateway`` on a free port: (process, port,
    its log file)."""
    if PRLIMIT is None:
        pytest.skip("prlimit (util-linux) is not installed")
    home.mkdir()
    log = home / "gateway.log"
    args = [PRLIMIT, f"--nofile={nofile}", "--", sys.executable, "-m", "ibhost.cli",
            "gateway", "--home", str(home), "--http-port", "0", "--set", "ib.port=1"]
    for s in sets:
        args += ["--set", s]
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=err)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        m = re.search(rb"listening on http://[^:]+:(\d+)", line)
        assert m, (line, log.read_text())
        yield proc, int(m.group(1)), log
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def open_idle(port: int, n: int, conns: list[Conn]) -> int:
    """Try to open ``n`` idle connections at once; how many connected."""
    gate = asyncio.Semaphore(200)

    async def one() -> None:
        async with gate:
            with contextlib.suppress(OSError, TimeoutError):
                await connect(port, conns)

    await asyncio.gather(*(one() for _ in range(n)))
    return len(conns)


def soft_nofile(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files line")


async def test_the_gateway_raises_its_soft_fd_limit_and_holds_2000_idle_sockets(
        tmp_path: Path) -> None:
    _own_fd_room()
    async with gateway_process(tmp_path / "home", "1024:4096",
                               "gateway.max_connections_per_client=3000",
                               "gateway.keepalive_timeout=600") as (proc, port, log):
        assert soft_nofile(proc.pid) == 4096
        assert "open files limit: 4096 (soft limit was 1024)" in log.read_text()
        async with sockets(port) as conns:
            opened = await open_idle(port, IDLE, conns)
            assert opened == IDLE
            status, body = await get(port, "/health")
            assert status == 200 and "healthy" in body


async def test_under_a_1024_hard_limit_the_cap_keeps_health_answering(
        tmp_path: Path) -> None:
    """2,000 idle sockets from one address against a gateway that may hold 1,024
    files: past the per-client cap (256) each is refused and closed at once, so
    descriptors stay free and /health is answered."""
    _own_fd_room()
    async with gateway_process(tmp_path / "home", "1024:1024",
                               "gateway.keepalive_timeout=600",
                               "gateway.header_timeout=600") as (proc, port, log):
        assert soft_nofile(proc.pid) == 1024
        async with sockets(port) as conns:
            await open_idle(port, IDLE, conns)
            # another client (any 127.x address is loopback on Linux): not over its cap
            status, body = await get(port, "/health", source="127.0.0.2")
            assert status == 200 and "healthy" in body
            fds = len(list(Path(f"/proc/{proc.pid}/fd").iterdir()))
            assert fds < 1024 - 100, fds
        assert "Traceback" not in log.read_text()

