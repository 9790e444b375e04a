"""A container's way to the gateway, without Docker: two network namespaces this test
creates and a veth pair between them, standing in for the host's side of a Docker
bridge and a container's network. The gateway runs in the "host" namespace on its
loopback and, through ``gateway.bind``, on the bridge-side address, which does not
exist yet when it starts (as a Docker bridge at boot). Only addresses inside these
namespaces are used."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ibhost.sim import Simulator

from .connector_fixtures import running_connector, wait_until

KEY = "netns-key-0123456789abcdef"
HOST_ADDR, CT_ADDR = "10.231.7.1", "10.231.7.2"
ROOT = Path(__file__).resolve().parent.parent
PYPATH = os.pathsep.join([str(ROOT / "daemon"), str(ROOT / "clients" / "python")])


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check,
                          timeout=30)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs the ip command and root (network namespaces)")
    tag = uuid.uuid4().hex[:6]
    host_ns, ct_ns = f"ibh-h-{tag}", f"ibh-c-{tag}"
    try:
        ip("netns", "add", host_ns)
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot create a network namespace here: {e.stderr.strip()}")
    try:
        ip("netns", "add", ct_ns)
        for ns in (host_ns, ct_ns):
            ip("-n", ns, "link", "set", "lo", "up")
        yield host_ns, ct_ns
    finally:
        for ns in (host_ns, ct_ns):  # deleting a namespace deletes its veth end
            ip("netns", "del", ns, check=False)


def connect_namespaces(host_ns: str, ct_ns: str) -> None:
    """The "Docker bridge": a veth pair, one end in each namespace."""
    a, b = f"vh{host_ns[-6:]}", f"vc{host_ns[-6:]}"
    ip("-n", host_ns, "link", "add", a, "type", "veth", "peer", "name", b, "netns", ct_ns)
    ip("-n", host_ns, "addr", "add", f"{HOST_ADDR}/30", "dev", a)
    ip("-n", ct_ns, "addr", "add", f"{CT_ADDR}/30", "dev", b)
    ip("-n", host_ns, "link", "set", a, "up")
    ip("-n", ct_ns, "link", "set", b, "up")


def in_ns(ns: str, code: str) -> str:
    res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": PYPATH})
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout.strip()


def status(url: str, key: str | None = None) -> str:
    headers = f"{{'X-API-Key': {key!r}}}" if key else "{}"
    return ("import json, urllib.request, urllib.error\n"
            f"req = urllib.request.Request({url!r}, headers={headers})\n"
            "try:\n"
            "    r = urllib.request.urlopen(req, timeout=10); print(r.status)\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code, json.loads(e.read())['error']['code'])\n")


async def test_a_container_reaches_the_gateway_on_the_bridge_with_a_key(
        namespaces: tuple[str, str], sim: Simulator, tmp_path: Path) -> None:
    host_ns, ct_ns = namespaces
    async with running_connector(tmp_path, sim):
        (tmp_path / "ibhost.toml").write_text(f"""
[ib]
port = {sim.port}
[gateway]
port = 5001
api_key = "{KEY}"
bind = ["{HOST_ADDR}"]
""")
        gw = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", host_ns, sys.executable, "-m", "ibhost.cli", "gateway",
            "--home", str(tmp_path), env={**os.environ, "PYTHONPATH": PYPATH},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert gw.stdout is not None
            line = await asyncio.wait_for(gw.stdout.readline(), 30)
            assert b"listening on http://127.0.0.1:5001" in line
            # the bridge address is not there yet: loopback serves regardless
            assert await asyncio.to_thread(
                in_ns, host_ns, status("http://127.0.0.1:5001/v1/health")) == "200"
            await asyncio.to_thread(connect_namespaces, host_ns, ct_ns)
            bridge = f"http://{HOST_ADDR}:5001"

            def reachable() -> bool:
                try:
                    return in_ns(ct_ns, status(bridge + "/livez")) == "200"
                except AssertionError:  # refused: the gateway has not bound it yet
                    return False

            await wait_until(lambda: reachable(), 15, interval=0.5)
            # from the container: a key is needed, reads too; probes answer without
            read = "/v1/data/head-timestamp?symbol=AAPL"  # keyless on loopback
            out = await asyncio.to_thread(in_ns, ct_ns, status(bridge + read))
            assert out == "401 unauthorized"
            out = await asyncio.to_thread(in_ns, ct_ns, status(bridge + read, "wrong-key-x"))
            assert out == "403 forbidden"
            out = await asyncio.to_thread(in_ns, ct_ns, status(bridge + read, KEY))
            assert out == "200"
            # ibhost's client, from inside the container, reads bars
            rows = await asyncio.to_thread(in_ns, ct_ns, (
                "from ibhost_client import IBHostClient\n"
                f"c = IBHostClient({bridge!r}, api_key={KEY!r})\n"
                "df = c.fetch_historical_data('AAPL', '1h', '2025-11-17', '2025-11-22',"
                " progress=False)\n"
                "print(len(df))"))
            assert int(rows) > 20
            # the host's own callers on loopback keep working without a key
            assert await asyncio.to_thread(
                in_ns, host_ns, status("http://127.0.0.1:5001" + read)) == "200"
        finally:
            gw.terminate()
            await asyncio.wait_for(gw.wait(), 30)
