"""``ibhost demo``: the whole tree against the simulator, in one command.

Creates a home with a config, starts ``ibhost sim`` and the supervisord tree,
waits until the gateway reports a ready IB connection, prints what to try, and
on Ctrl-C stops everything it started (and nothing else).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from .proc import stop_signals, wait_for_stop_signal
from .tree import prepare_home, start_supervisord, stop_supervisord, supervisord_conf


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the whole tree against the simulator")
    p.add_argument("--home", default=None, help="home to create (default: a new temp dir)")
    p.add_argument("--http-port", type=int, default=5001,
                   help="gateway port (5001; a free one if taken)")
    p.add_argument("--sim-port", type=int, default=0, help="simulator port (free one)")
    p.add_argument("--start-time", default=None,
                   help="simulated clock start, e.g. 2025-11-20T15:00 (default: now)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for the tree to become ready")
    p.set_defaults(func=run)


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port")


def write_config(home: Path, sim_port: int, http_port: int, api_key: str) -> None:
    (home / "ibhost.toml").write_text(
        "# written by `ibhost demo`: the tree against the simulator\n"
        f"[ib]\nport = {sim_port}\n\n"
        f"[gateway]\nport = {http_port}\napi_key = \"{api_key}\"\n\n"
        "[trading]\n# the simulator is a paper account: trading is on, inside the guards\n"
        "enabled = true\nmax_quantity = 100\nmax_notional = 50000\n")
    (home / "ibhost.toml").chmod(0o600)


def run(args: argparse.Namespace) -> int:
    home = Path(args.home).expanduser().absolute() if args.home else Path(
        tempfile.mkdtemp(prefix="ibhost-demo-"))
    return asyncio.run(_demo(args, home))


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
    prepare_home(home)
    conf = supervisord_conf()
    sim_port = _free_port(args.sim_port) if args.sim_port else _free_port(0)
    http_port = _free_port(args.http_port)
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
    print(f"ibhost demo: home {home}", flush=True)
    print("starting the simulator and the supervised tree (connector, watchdog, gateway)...",
          flush=True)
    code = 0
    try:
        if not await _wait_ready(url, args.timeout, [sim, sup], stop):
            if stop.is_set():
                return 0
            print(f"ibhost demo: the tree did not become ready in {args.timeout:g}s; "
                  f"see {home / 'log'}", file=sys.stderr)
            code = 1
        else:
            env = f"IBHOST_HOME={home} IBHOST_PYTHON={sys.executable}"
            print(f"""
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

Ctrl-C stops everything.""", flush=True)
            await wait_for_stop_signal(stop)
    finally:
        print("\nstopping...", flush=True)
        await stop_supervisord(sup)
        if sim.returncode is None:
            sim.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(sim.wait(), 10)
            except TimeoutError:
                sim.kill()
                await sim.wait()
        log.close()
        print("stopped.", flush=True)
    return code
