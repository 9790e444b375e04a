"""``ibhost demo``: the whole tree against the simulator, in one command.

Creates a home with a config, starts ``ibhost sim`` and the supervisord tree,
waits until the gateway reports a ready IB connection, prints what to try, and
on Ctrl-C stops everything it started (and nothing else).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import select
import shutil
import signal
import socket
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from .config import ConfigError
from .proc import stop_signals, wait_for_stop_signal
from .tree import check_home, prepare_home, start_supervisord, stop_supervisord, supervisord_conf


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the whole tree against the simulator")
    p.add_argument("--home", default=None,
                   help="home to create (default: a new temp dir, removed at the end)")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary home (logs, config with the API key) at the end")
    p.add_argument("--http-port", type=int, default=5001,
                   help="gateway port (5001; a free one if taken, and it says so)")
    p.add_argument("--sim-port", type=int, default=0, help="simulator port (free one)")
    p.add_argument("--start-time", default=None,
                   help="simulated clock start, e.g. 2025-11-20T15:00 (default: now)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for the tree to become ready")
    p.set_defaults(func=run)


def _free_port(preferred: int) -> int:
    """``preferred`` if it can be listened on, else a free port. SO_REUSEADDR as the
    gateway binds: a port left in TIME_WAIT by an earlier run is free to it."""
    for port in (preferred, 0):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port")


class Output:
    """stdout that may go away (``ibhost demo | head -1``): then the demo stops
    everything it started instead of dying on the broken pipe and leaving the
    simulator and the tree running."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.closed = False

    def say(self, text: str) -> None:
        if self.closed:
            return
        try:
            print(text, flush=True)
        except BrokenPipeError:
            self.closed = True
            # later writes and the flush at exit go nowhere rather than failing again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            print("ibhost demo: standard output closed; stopping everything it started",
                  file=sys.stderr, flush=True)
            self.stop.set()

    def reader_gone(self) -> bool:
        """Has stdout's reader gone without a write of ours failing yet? (``| head -3``
        can take the last line the demo prints and leave it waiting forever.) poll()
        reports POLLERR on a pipe's write end once no reader is left."""
        try:
            if not stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode):
                return False
            poller = select.poll()
            poller.register(sys.stdout.fileno(), 0)
            return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
        except (OSError, ValueError, AttributeError):  # no poll() on this platform
            return False

    async def watch(self, interval: float = 0.5) -> None:
        """Stop everything when stdout's reader goes away, even with nothing to write."""
        while not self.stop.is_set() and not self.closed:
            if self.reader_gone():
                self.say("")  # fails with EPIPE: reported and stopped the one way
                if not self.closed:
                    self.closed = True
                    self.stop.set()
                return
            await asyncio.sleep(interval)


def write_config(home: Path, sim_port: int, http_port: int, api_key: str) -> None:
    (home / "ibhost.toml").write_text(
        "# written by `ibhost demo`: the tree against the simulator\n"
        f"[ib]\nport = {sim_port}\n\n"
        f"[gateway]\nport = {http_port}\napi_key = \"{api_key}\"\n\n"
        "[trading]\n# the simulator is a paper account: trading is on, inside the guards\n"
        "enabled = true\nmax_quantity = 100\nmax_notional = 50000\n")
    (home / "ibhost.toml").chmod(0o600)


def run(args: argparse.Namespace) -> int:
    temp = not args.home
    home = Path(args.home).expanduser().absolute() if args.home else Path(
        tempfile.mkdtemp(prefix="ibhost-demo-"))
    try:
        check_home(home)
        return asyncio.run(_demo(args, home))
    except ConfigError as e:
        print(f"ibhost demo: {e}", file=sys.stderr)
        return 2
    finally:
        if temp and not args.keep:
            # it holds the demo's API key; nothing in it outlives the demo
            shutil.rmtree(home, ignore_errors=True)


def _log_tails(home: Path, lines: int = 15) -> None:
    for f in sorted((home / "log").glob("*.log")):
        tail = f.read_text(errors="replace").splitlines()[-lines:]
        if tail:
            print(f"--- {f.name} (last {len(tail)} lines)", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)


async def _wait_ready(url: str, timeout: float, procs: list[asyncio.subprocess.Process],
                      stop: asyncio.Event) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while loop.time() < end:
            if stop.is_set() or any(p.returncode is not None for p in procs):
                return False
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with http.get(url + "/health") as r:
                    if (await r.json()).get("status") in ("ok", "degraded"):
                        return True
            await asyncio.sleep(0.3)
    return False


async def _demo(args: argparse.Namespace, home: Path) -> int:
    stop = stop_signals()  # before announcing readiness
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, stop.set)
    out = Output(stop)
    watcher = asyncio.get_running_loop().create_task(out.watch())
    prepare_home(home)
    conf = supervisord_conf()
    sim_port = _free_port(args.sim_port) if args.sim_port else _free_port(0)
    http_port = _free_port(args.http_port)
    moved = http_port != args.http_port
    api_key = secrets.token_urlsafe(24)
    write_config(home, sim_port, http_port, api_key)
    sim_sock = home / "run" / "sim.sock"
    sim_cmd = [sys.executable, "-m", "ibhost.cli", "sim", "--port", str(sim_port),
               "--control", str(sim_sock), "--log-level", "WARNING"]
    if args.start_time:
        sim_cmd += ["--start-time", args.start_time]
    log = (home / "log" / "sim.log").open("ab")
    sim = await asyncio.create_subprocess_exec(*sim_cmd, stdout=log, stderr=log,
                                               start_new_session=True)
    sup = await start_supervisord(home, conf=conf)
    url = f"http://127.0.0.1:{http_port}"
    out.say(f"ibhost demo: home {home}" + ("" if args.home or args.keep
                                             else " (removed at the end; --keep keeps it)"))
    if moved:
        out.say(f"ibhost demo: port {args.http_port} is taken; the gateway listens on "
                f"{http_port} instead")
    out.say("starting the simulator and the supervised tree (connector, gap-filler, "
            "watchdog, gateway, events listener)...")
    code = 0
    try:
        if not await _wait_ready(url, args.timeout, [sim, sup], stop):
            if stop.is_set():
                return 0
            kept = bool(args.home or args.keep)
            print(f"ibhost demo: the tree did not become ready in {args.timeout:g}s; "
                  + (f"logs in {home / 'log'}" if kept else "its logs end:"),
                  file=sys.stderr)
            _log_tails(home)
            code = 1
        else:
            env = f"IBHOST_HOME={home} IBHOST_PYTHON={sys.executable}"
            out.say(f"""
ready. The IB connection runs against the simulator on 127.0.0.1:{sim_port}.

  API            {url}/            docs: {url}/docs   metrics: {url}/metrics
  health         curl -s {url}/health
  bars           curl -s {url}/v1/data/historical -H 'Content-Type: application/json' \\
                   -d '{{"symbol": "AAPL", "timeframe": "1h", "duration": "5 D"}}'
  order (key)    curl -s {url}/v1/orders -H 'X-API-Key: {api_key}' \\
                   -d '{{"symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "MKT"}}'
  status         {sys.executable} -m ibhost.cli ctl --home {home} status
  processes      {env} supervisorctl -c {conf} status
  faults         {sys.executable} -m ibhost.cli sim ctl --control {sim_sock} freeze

Ctrl-C stops everything.""")
            await wait_for_stop_signal(stop)
    finally:
        watcher.cancel()
        out.say("\nstopping...")
        await stop_supervisord(sup)
        if sim.returncode is None:
            sim.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(sim.wait(), 10)
            except TimeoutError:
                sim.kill()
                await sim.wait()
        log.close()
        out.say("stopped.")
    return code
