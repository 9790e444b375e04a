"""``ibhost bench --peers``: its arguments, what it says of peers not given or not
startable, and that a peer which exits at once is reported as failed to start (with
its output's tail), never as a traceback. No peer checkout is needed: the full
comparison (bench/peers.py) is run by hand with checkouts of the two services."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest

from ibhost import benchcmd, cli

ROOT = Path(__file__).resolve().parents[1]


def peers_module() -> ModuleType:
    name = "ibhost_bench_peers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "peers.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def bench_args(*argv: str) -> argparse.Namespace:
    return cli.build_parser("bench").parse_args(["bench", *argv])


def test_peers_arguments_are_handed_to_bench_peers() -> None:
    args = bench_args("--peers", "--ktrdr", "/src/ktrdr", "--bridge", "/src/ws", "--quick",
                      "--out", "/tmp/r")
    assert benchcmd.peers_argv(args) == ["--quick", "--ktrdr", "/src/ktrdr", "--bridge",
                                         "/src/ws", "--out", "/tmp/r"]
    assert benchcmd.peers_argv(bench_args("--peers")) == []
    assert benchcmd.peers_argv(bench_args("--quick")) is None  # the suite, as before
    with pytest.raises(ValueError, match="--ktrdr only with --peers"):
        benchcmd.peers_argv(bench_args("--ktrdr", "/src/ktrdr"))
    # bench/peers.py reads them back
    a = peers_module().parser().parse_args(benchcmd.peers_argv(args))
    assert (a.ktrdr, a.bridge, a.quick, a.out) == ("/src/ktrdr", "/src/ws", True, "/tmp/r")
    assert a.peer_python == sys.executable


def test_a_peer_path_without_peers_is_a_usage_error() -> None:
    p = subprocess.run([sys.executable, "-m", "ibhost.cli", "bench", "--bridge", "/x"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "ibhost bench: --bridge only with --peers" in p.stderr
    assert "Traceback" not in p.stderr


def test_peers_not_given_are_said_so_and_ibhost_runs_against_direct_alone(
        tmp_path: Path) -> None:
    m = peers_module()
    peers = m.plan(None, None, sys.executable, tmp_path, "k" * 20)
    assert {k: p.status for k, p in peers.items()} == {"ktrdr": "not given",
                                                       "bridge": "not given"}
    b = m.PeerBench.__new__(m.PeerBench)  # only what systems() reads: nothing started
    b.peers, b.ibhost_status = peers, "ready"
    assert [b.systems(op) for op in m.OPS] == [["ibhost", "direct"]] * len(m.OPS)
    results = {"quick": True, "started": "2025-12-10T15:30:00+00:00",
               "machine": {"host": "h", "cpu": "c", "cpus": 2, "memory_gib": 1,
                           "system": "s", "python": "3.11"},
               "simulator": {"start_time": "2025-11-20T15:00", "seed": 0,
                             "pacing_scale": "0.000001"},
               "direct_interval_s": 1.1, "latency": {
                   "market_data@1": {
                       "op": "market_data", "title": "quote",
                       "path": "GET /market-data/AAPL", "clients": 1, "original": "bridge",
                       "ibhost": {"p50_ms": 10.0, "p99_ms": 12.0, "n": 4, "errors": 0,
                                  "answer_sizes": [1]},
                       "direct": {"p50_ms": 5.0, "p99_ms": 8.0, "n": 4, "errors": 0,
                                  "answer_sizes": [1]},
                       "ibhost_vs_original": {"p50": None, "p99": None},
                       "ibhost_vs_direct": {"p50": 2.0, "p99": 1.5}}},
               "systems": {"ibhost": {"title": "ibhost", "status": "ready"},
                           **{k: p.summary() for k, p in peers.items()},
                           "direct": {"title": "direct ib_async", "status": "ready"}}}
    md = m.markdown(results)
    assert "- KTRDR's IB host service: not given: give a checkout with `--ktrdr PATH`" in md
    assert "- wheel-strat bridge: not given: give a checkout with `--bridge PATH`" in md
    assert ("| quote `GET /market-data/AAPL` | wheel-strat bridge | 1 | not given | "
            "10 / 12 | 5 / 8 | - | 2.00 / 1.50 | -; 1; 1 |") in md


def test_a_peer_path_that_is_not_a_checkout_is_reported_before_anything_starts(
        tmp_path: Path) -> None:
    m = peers_module()
    peers = m.plan(str(tmp_path / "nowhere"), str(tmp_path), sys.executable, tmp_path,
                   "k" * 20)
    assert peers["ktrdr"].status == "failed to start"
    assert "is not a KTRDR checkout" in peers["ktrdr"].reason
    assert peers["bridge"].status == "failed to start"
    assert "no scripts/bridge/ibkr_bridge.py" in peers["bridge"].reason
    assert m.missing_modules(sys.executable, {"json": "json", "no_such_mod_x": "no-such"}) \
        == ["no-such"]


async def test_a_peer_that_exits_at_once_is_reported_failed_to_start(tmp_path: Path) -> None:
    m = peers_module()
    p = m.Peer("bridge", "wheel-strat bridge", "--bridge", path=tmp_path, status="starting")
    p.argv = [sys.executable, "-c",
              "import sys; print('Connecting to 127.0.0.1:4002'); "
              "sys.exit('ImportError: no module named flask_cors')"]
    p.env, p.cwd, p.log, p.url = {}, tmp_path / "run", tmp_path / "bridge.log", \
        f"http://127.0.0.1:{m.free_port()}"
    procs = m.Processes()
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as http:
        await m.start_peer(p, procs, http, timeout=15)
    assert time.monotonic() - t0 < 10
    assert p.status == "failed to start" and not p.running
    assert p.reason.startswith("exited with code 1; its output ends:\n"), p.reason
    assert "Connecting to 127.0.0.1:4002" in p.reason
    assert "ImportError: no module named flask_cors" in p.reason
    [(name, proc)] = procs.procs
    assert name == "bridge" and proc.returncode == 1  # registered, and gone
    await procs.stop_all()


async def test_a_peer_that_never_gets_ready_is_stopped_by_its_pid(tmp_path: Path) -> None:
    m = peers_module()
    p = m.Peer("ktrdr", "KTRDR's IB host service", "--ktrdr", path=tmp_path,
               status="starting")
    p.argv = [sys.executable, "-c", "import time; print('waiting for IB', flush=True); time.sleep(60)"]
    p.env, p.cwd, p.log, p.url = {}, tmp_path / "run", tmp_path / "ktrdr.log", \
        f"http://127.0.0.1:{m.free_port()}"
    procs = m.Processes()
    async with aiohttp.ClientSession() as http:
        await m.start_peer(p, procs, http, timeout=2)
    assert p.status == "failed to start"
    assert p.reason.startswith("not ready within 2 s"), p.reason
    assert "waiting for IB" in p.reason
    [(_, proc)] = procs.procs
    assert proc.returncode is not None  # stopped, not left behind
    await asyncio.sleep(0)


def test_a_peer_whose_packages_are_missing_is_not_started_and_they_are_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = peers_module()
    script = tmp_path / "ws" / "scripts" / "bridge" / "ibkr_bridge.py"
    script.parent.mkdir(parents=True)
    script.write_text("raise SystemExit('never run')\n")
    monkeypatch.setattr(m, "BRIDGE_MODULES", {"json": "json", "no_such_mod_y": "no-such-y"})
    peers = m.plan(None, str(tmp_path / "ws"), sys.executable, tmp_path, "k" * 20)
    p = peers["bridge"]
    assert p.status == "not started" and not p.running
    assert p.reason == (f"missing Python packages for it: no-such-y ({sys.executable} -m pip "
                        "install no-such-y)")
    assert p.argv[-1] == str(script)  # what it would have run
