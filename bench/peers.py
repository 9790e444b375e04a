"""``ibhost bench --peers [--ktrdr PATH] [--bridge PATH] [--quick]``: ibhost side by side
with the two services it replaces, each started from a local checkout, and with a direct
ib_async client as the floor.

Every system gets an ``ibhost sim`` of its own (same seed, same pinned start time, the
same pacing windows as ``bench/suite.py``), so all of them see identical data:

- ibhost: the supervised tree, as ``bench/suite.py`` starts it, through its
  KTRDR-compatible paths (``POST /data/historical``) and its bridge-compatible paths
  (``/market-data/AAPL``, ``/option-chain/AAPL``, ``/positions``, ``/option-quote``);
- KTRDR's IB host service (``kpiteira/ktrdr``, ``ib-host-service/``): FastAPI under
  uvicorn, importing the ``ktrdr`` package from the checkout's root;
- the wheel-strat bridge (``dart-technologies/wheel-strat``,
  ``scripts/bridge/ibkr_bridge.py``): Flask and ib_insync, run as its own ``__main__``
  with only its listening address moved from 0.0.0.0:5050 to 127.0.0.1 and a free port;
- direct ib_async: the IB requests each answer needs, from one client.

Nothing of the peers is copied: they run as subprocesses from the paths given, with the
Python packages they need installed beside ibhost's (the bench checks for them first and
names what is missing). Each operation is timed at 1 and 10 concurrent clients, the
systems taking turns round by round (so load from elsewhere falls on all alike); p50
and p99 per system, ibhost / original and ibhost / direct. A peer that does not start is
reported with the reason (its output's tail) and the rest still runs. Every process the
bench starts is stopped by its pid at the end, on Ctrl-C and on SIGTERM too.

The table is printed and written as JSON and Markdown under ``bench/results/`` (or
``--out``): ``peers.json``/``peers.md`` (``peers-quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
PY = [sys.executable, "-m", "ibhost.cli"]
HOST = "127.0.0.1"
REQUEST_TIMEOUT = 120.0  # one request, any system: then it counts as an error
READY_TIMEOUT = 90.0  # a peer's HTTP port answering (and the bridge: IB synced)
ONE_CLIENT_GAP = 0.05  # between one client's requests, as bench/suite.py spaces them
TAIL_LINES = 15

# the Python modules each peer imports at start-up, and the pip name of each
KTRDR_MODULES = {
    "fastapi": "fastapi", "uvicorn": "uvicorn", "ib_async": "ib_async",
    "pandas": "pandas", "pydantic_settings": "pydantic-settings",
    "dotenv": "python-dotenv", "yaml": "pyyaml", "prometheus_client": "prometheus-client",
    "opentelemetry.sdk": "opentelemetry-sdk",
    "opentelemetry.instrumentation.fastapi": "opentelemetry-instrumentation-fastapi",
    "opentelemetry.instrumentation.httpx": "opentelemetry-instrumentation-httpx",
    "opentelemetry.instrumentation.logging": "opentelemetry-instrumentation-logging",
    "opentelemetry.exporter.prometheus": "opentelemetry-exporter-prometheus",
    "opentelemetry.exporter.otlp": "opentelemetry-exporter-otlp"}
BRIDGE_MODULES = {
    "flask": "flask", "flask_cors": "flask-cors", "ib_insync": "ib_insync",
    "mibian": "mibian", "scipy": "scipy", "nest_asyncio": "nest-asyncio",
    "dotenv": "python-dotenv"}

# The bridge as ``python3 scripts/bridge/ibkr_bridge.py`` runs it (its __main__ block:
# the IB loop, the connection monitor, the webhook worker, then app.run), except that
# app.run's hard-coded 0.0.0.0:5050 becomes 127.0.0.1 and the port given.
BRIDGE_LAUNCH = """
import os, runpy, sys
import flask
port, script = int(sys.argv[1]), sys.argv[2]
_run = flask.Flask.run
def _on_loopback(self, *args, **kw):
    kw.pop("host", None)
    kw.pop("port", None)
    return _run(self, "127.0.0.1", port, **kw)
flask.Flask.run = _on_loopback
sys.argv = [script]
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name="__main__")
"""


def load_suite() -> ModuleType:
    """bench/suite.py (not a package): the ibhost tree, the simulator's pinned start,
    the direct client and the machine description, shared with ``ibhost bench``."""
    name = "ibhost_bench_suite"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "suite.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # colour codes of their loggers
    return "\n".join(text.rstrip().splitlines()[-lines:])


# --- the peers: what to start, how, and whether it can ---------------------------------


@dataclass
class Peer:
    key: str  # "ktrdr" or "bridge"
    title: str
    flag: str
    path: Path | None = None
    status: str = "not given"  # not given | not started | starting | ready | failed to start
    reason: str = ""
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ready_path: str = "/health"
    ready: Callable[[Any], bool] = lambda body: True
    url: str = ""
    log: Path | None = None
    pid: int | None = None

    @property
    def running(self) -> bool:
        return self.status == "ready"

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title, "status": self.status,
                               "flag": self.flag, "path": str(self.path) if self.path else None}
        if self.path and self.path.exists():
            out["commit"] = git_commit(self.path)
        if self.reason:
            out["reason"] = self.reason
        if self.argv:
            out["command"] = self.argv if self.key != "bridge" else [
                *self.argv[:2], "<ibkr_bridge.py as __main__ on 127.0.0.1>", *self.argv[3:]]
            out["env"] = {k: v for k, v in self.env.items() if k in PEER_ENV_KEYS}
        return out


PEER_ENV_KEYS = ("KTRDR_IB_HOST", "KTRDR_IB_PORT", "KTRDR_IB_CLIENT_ID", "OTLP_ENDPOINT",
                 "PYTHONPATH", "IB_HOST", "IB_PORT", "IB_CLIENT_ID", "IB_TRADING_MODE",
                 "IBKR_BRIDGE_ENV_FILE")


def git_commit(path: Path) -> str | None:
    """The checkout's commit, when it is a git work tree."""
    try:
        p = subprocess.run(["git", "-C", str(path if path.is_dir() else path.parent),
                            "rev-parse", "HEAD"], capture_output=True, text=True,
                           timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def missing_modules(python: str, modules: dict[str, str]) -> list[str]:
    """The pip names of ``modules`` that ``python`` cannot find (without importing
    the peer itself)."""
    probe = ("import importlib.util, sys\n"
             "def has(m):\n"
             "    try:\n"
             "        return importlib.util.find_spec(m) is not None\n"
             "    except (ImportError, ValueError):\n"
             "        return False\n"
             "print(' '.join(m for m in sys.argv[1:] if not has(m)))\n")
    try:
        p = subprocess.run([python, "-c", probe, *modules], capture_output=True, text=True,
                           timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [f"(could not run {python}: {e})"]
    if p.returncode != 0:
        return [f"(could not run {python}: {p.stderr.strip()[-300:]})"]
    return [modules[m] for m in p.stdout.split()]


def ktrdr_root(path: Path) -> Path | None:
    """The checkout's root (it holds ``ktrdr/`` and ``ib-host-service/``); the path may
    name the root or ``ib-host-service`` itself."""
    for root in (path, path.parent):
        if (root / "ib-host-service" / "main.py").is_file() and (root / "ktrdr").is_dir():
            return root
    return None


def bridge_script(path: Path) -> Path | None:
    for p in (path, path / "ibkr_bridge.py", path / "scripts" / "bridge" / "ibkr_bridge.py"):
        if p.is_file() and p.name == "ibkr_bridge.py":
            return p
    return None


def peer_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment less anything that would point a peer elsewhere (its own IB
    settings, a key, a pytest marker that switches KTRDR's start-up to test mode)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IB_", "IBKR_", "BRIDGE_", "KTRDR_", "OTEL_", "PYTEST_"))
           and k not in ("OTLP_ENDPOINT", "TRADING_MODE")}
    env["PYTHONUNBUFFERED"] = "1"  # its output's tail is complete when it fails
    env.update(extra)
    return env


def plan(ktrdr: str | None, bridge: str | None, python: str, run_dir: Path,
         key: str) -> dict[str, Peer]:
    """What each peer would be started with, or why it cannot be (not given, not a
    checkout, packages missing). Starts nothing."""
    peers = {"ktrdr": Peer("ktrdr", "KTRDR's IB host service", "--ktrdr"),
             "bridge": Peer("bridge", "wheel-strat bridge", "--bridge")}
    if ktrdr:
        p = peers["ktrdr"]
        p.path = Path(ktrdr).expanduser().resolve()
        root = ktrdr_root(p.path)
        if root is None:
            p.status, p.reason = "failed to start", (
                f"{p.path} is not a KTRDR checkout (no ib-host-service/main.py and "
                "ktrdr/ there or one level up)")
        else:
            p.cwd = run_dir / "ktrdr"  # its symbol cache (data/) and .env.local lookups
            p.argv = [python, "-m", "uvicorn", "main:app", "--app-dir",
                      str(root / "ib-host-service"), "--host", HOST, "--port", "0"]
            p.env = peer_env({
                "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                "KTRDR_IB_HOST": HOST, "KTRDR_IB_CLIENT_ID": "1",
                # no trace collector here: no exporter (KTRDR's default is
                # localhost:4317, which would retry in the background)
                "OTLP_ENDPOINT": ""})
            p.ready = lambda body: isinstance(body, dict) and body.get("healthy") is True
            check_packages(p, python, KTRDR_MODULES)
    if bridge:
        p = peers["bridge"]
        p.path = Path(bridge).expanduser().resolve()
        script = bridge_script(p.path)
        if script is None:
            p.status, p.reason = "failed to start", (
                f"{p.path} is not a wheel-strat checkout (no scripts/bridge/ibkr_bridge.py)")
        else:
            p.cwd = run_dir / "bridge"  # it reads .env and .env.local from here: none
            p.argv = [python, "-c", BRIDGE_LAUNCH, "0", str(script)]
            p.env = peer_env({"IB_HOST": HOST, "IB_CLIENT_ID": "1",
                              "IB_TRADING_MODE": "paper", "IBKR_BRIDGE_API_KEY": key,
                              "IBKR_BRIDGE_ENV_FILE": os.devnull})
            p.ready = lambda body: isinstance(body, dict) and body.get("ready") is True
            check_packages(p, python, BRIDGE_MODULES)
    return peers


def check_packages(p: Peer, python: str, modules: dict[str, str]) -> None:
    """``starting``, or ``not started`` naming the packages ``python`` lacks for ``p``
    and the pip command that installs them."""
    missing = missing_modules(python, modules)
    if missing:
        p.status, p.reason = "not started", (
            "missing Python packages for it: " + ", ".join(missing) +
            f" ({python} -m pip install "
            f"{' '.join(m for m in missing if not m.startswith('('))})")
    else:
        p.status = "starting"


def set_ports(p: Peer, http_port: int, ib_port: int) -> None:
    if p.key == "ktrdr":
        p.argv[p.argv.index("--port") + 1] = str(http_port)
        p.env["KTRDR_IB_PORT"] = str(ib_port)
    else:
        p.argv[3] = str(http_port)
        p.env["IB_PORT"] = str(ib_port)
    p.url = f"http://{HOST}:{http_port}"


# --- processes: every one started is registered here and stopped by its pid ------------


class Processes:
    def __init__(self) -> None:
        self.procs: list[tuple[str, asyncio.subprocess.Process]] = []

    def add(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.procs.append((name, proc))

    async def stop(self, proc: asyncio.subprocess.Process, grace: float = 10.0) -> None:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(p) for _, p in reversed(self.procs)),
                             return_exceptions=True)


async def start_sim(procs: Processes, name: str, log: Path, start: str,
                    scale: str, seed: int) -> int:
    """An ``ibhost sim`` of its own, as bench/suite.py starts the tree's; its port."""
    with log.open("wb") as err:
        sim = await asyncio.create_subprocess_exec(
            *PY, "sim", "--port", "0", "--pacing-scale", scale, "--seed", str(seed),
            "--log-level", "WARNING", "--start-time", start,
            stdout=asyncio.subprocess.PIPE, stderr=err, stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True)
    procs.add(name, sim)
    assert sim.stdout is not None
    line = (await asyncio.wait_for(sim.stdout.readline(), 60)).decode()
    m = re.search(r":(\d+)", line)
    if not m:
        raise RuntimeError(f"the simulator for {name} did not start: {line!r} "
                           f"{tail(log)}")
    return int(m.group(1))


async def start_peer(p: Peer, procs: Processes, http: Any,
                     timeout: float = READY_TIMEOUT) -> Peer:
    """Starts ``p`` and waits until its ready path says so. A peer that exits, or is not
    ready in ``timeout`` seconds, is ``failed to start`` with the reason and its
    output's tail (and is stopped); nothing is raised."""
    import aiohttp

    assert p.log is not None and p.cwd is not None
    p.cwd.mkdir(parents=True, exist_ok=True)
    try:
        with p.log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *p.argv, cwd=str(p.cwd), env=p.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    except OSError as e:
        p.status, p.reason = "failed to start", f"{p.argv[0]}: {e}"
        return p
    procs.add(p.key, proc)
    p.pid = proc.pid
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            p.status = "failed to start"
            p.reason = f"exited with code {proc.returncode}"
            break
        try:
            async with http.get(p.url + p.ready_path,
                                timeout=aiohttp.ClientTimeout(total=3)) as r:
                body = await r.json(content_type=None)
                if r.status == 200 and p.ready(body):
                    p.status = "ready"
                    return p
                last = f"{p.ready_path} answered {r.status}: {json.dumps(body)[:200]}"
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
            last = f"{p.ready_path}: {type(e).__name__}"
        await asyncio.sleep(0.25)
    else:
        p.status = "failed to start"
        p.reason = f"not ready within {timeout:.0f} s ({last})"
    await procs.stop(proc)
    out_tail = tail(p.log)
    if out_tail:
        p.reason += "; its output ends:\n" + out_tail
    return p


# --- the operations ------------------------------------------------------------------


@dataclass
class Op:
    key: str
    title: str
    original: str  # the peer that serves it: "ktrdr" or "bridge"
    path: str  # the HTTP path, as both serve it


OPS = [
    Op("bars_1m_1d", "1 day of 1-minute bars", "ktrdr", "POST /data/historical"),
    Op("bars_1h_30d", "30 days of 1-hour bars", "ktrdr", "POST /data/historical"),
    Op("market_data", "quote", "bridge", "GET /market-data/AAPL"),
    Op("option_chain", "option chain", "bridge", "GET /option-chain/AAPL"),
    Op("positions", "positions", "bridge", "GET /positions"),
    Op("option_quote", "option quote", "bridge", "POST /option-quote"),
]


class Failed(Exception):
    pass


def pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    s = sorted(samples)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


class PeerBench:
    def __init__(self, peers: dict[str, Peer], quick: bool, run_dir: Path) -> None:
        import logging

        logging.getLogger("ib_async").setLevel(logging.CRITICAL)
        self.suite = load_suite()
        self.peers = peers
        self.quick = quick
        self.run_dir = run_dir
        self.procs = Processes()
        self.tree: Any = None
        self.ibhost_status = "starting"
        self.ibhost_reason = ""
        self.http: Any = None
        self.ib: Any = None
        self.direct_port = 0
        self.contracts: dict[str, Any] = {}
        self.option: dict[str, Any] = {}
        self.option_contract: Any = None
        self.checks: dict[str, Any] = {}
        self.results: dict[str, Any] = {
            "quick": quick, "machine": self.suite.machine(),
            "started": dt.datetime.now(dt.UTC).isoformat(),
            "simulator": {"start_time": self.suite.SIM_START, "seed": self.suite.SIM_SEED,
                          "pacing_scale": self.suite.SCALE},
            "direct_interval_s": self.suite.DIRECT_INTERVAL}

    # --- start and stop -------------------------------------------------------------

    async def start(self, say: Callable[[str], None]) -> None:
        import aiohttp

        s = self.suite
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            # idle connections dropped after 4 s, before uvicorn's 5 s keep-alive closes
            # them under a request (a ServerDisconnectedError that is no system's fault)
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0),
            headers={"X-API-Key": s.KEY})  # ibhost's key; the bridge is given the same
        sims = {"direct": start_sim(self.procs, "sim for direct", self.run_dir / "sim-direct.log",
                                    s.SIM_START, s.SCALE, s.SIM_SEED)}
        for p in self.peers.values():
            if p.status == "starting":
                sims[p.key] = start_sim(self.procs, f"sim for {p.key}",
                                        self.run_dir / f"sim-{p.key}.log", s.SIM_START,
                                        s.SCALE, s.SIM_SEED)
        ports = dict(zip(sims, await asyncio.gather(*sims.values(), return_exceptions=True),
                         strict=True))
        if isinstance(ports["direct"], BaseException):
            raise ports["direct"]
        self.direct_port = ports["direct"]
        for key, port in ports.items():
            if isinstance(port, BaseException):
                p = self.peers[key]
                p.status, p.reason = "failed to start", f"its simulator: {port}"
        starts: list[Awaitable[Any]] = [self.start_tree()]
        for p in self.peers.values():
            if p.status == "starting":
                set_ports(p, free_port(), ports[p.key])
                p.log = self.run_dir / f"{p.key}.log"
                starts.append(start_peer(p, self.procs, self.http))
        await asyncio.gather(*starts)
        for p in self.peers.values():
            if p.status == "ready":
                say(f"{p.title}: ready at {p.url} (pid {p.pid})")
            elif p.status != "not given":
                say(f"{p.title}: {p.status}: {p.reason}")
        await self.direct_setup()

    async def start_tree(self) -> None:
        self.tree = self.suite.Bench(self.quick)
        try:
            await self.tree.start()
            if await self.tree.health() != "ok":
                raise Failed("the gateway's /v1/health is not ok after 60 s")
            self.ibhost_status = "ready"
        except Exception as e:  # reported with the rest; the peers still run
            self.ibhost_status = "failed to start"
            self.ibhost_reason = f"{type(e).__name__}: {e}"

    async def direct_setup(self) -> None:
        """The direct client, the contracts every system is asked about, one option
        picked from the simulator's chain, and the same positions in every system's
        account (market orders from a client of each simulator)."""
        from ib_async import IB, MarketOrder, Option, Stock

        s = self.suite
        self.ib = s.direct_ib()
        await self.ib.connectAsync(HOST, self.direct_port, clientId=90)
        qualified = await self.ib.qualifyContractsAsync(
            *(Stock(sym, "SMART", "USD") for sym in s.SYMBOLS))
        self.contracts = dict(zip(s.SYMBOLS, qualified, strict=True))
        aapl = self.contracts["AAPL"]
        [ticker] = await self.ib.reqTickersAsync(aapl)
        price = ticker.marketPrice()
        chains = await self.ib.reqSecDefOptParamsAsync("AAPL", "", "STK", aapl.conId)
        chain = next(c for c in chains if c.exchange == "SMART")
        today = dt.date.fromisoformat(s.SIM_START[:10])
        expiry = min(e for e in chain.expirations
                     if dt.datetime.strptime(e, "%Y%m%d").date() >= today + dt.timedelta(7))
        strike = min(chain.strikes, key=lambda k: abs(k - price))
        self.option = {"symbol": "AAPL", "expiration": expiry, "strike": strike,
                       "right": "P"}
        [self.option_contract] = await self.ib.qualifyContractsAsync(
            Option("AAPL", expiry, strike, "P", "SMART", tradingClass=chain.tradingClass))
        self.checks["option"] = self.option
        orders = {"AAPL": 100, "MSFT": 50, "SPY": 20}
        ports = [self.direct_port] + [int(p.env.get("KTRDR_IB_PORT") or p.env["IB_PORT"])
                                      for p in self.peers.values() if p.running]
        if self.ibhost_status == "ready":
            ports.append(self.tree.sim_port)
        for port in ports:
            ib = IB()
            try:
                await ib.connectAsync(HOST, port, clientId=80)
                trades = [ib.placeOrder(self.contracts[sym], MarketOrder("BUY", qty))
                          for sym, qty in orders.items()]
                for _ in range(100):
                    if all(t.isDone() for t in trades):
                        break
                    await asyncio.sleep(0.05)
            finally:
                ib.disconnect()
        self.checks["positions_placed"] = orders
        await asyncio.sleep(1.0)  # every system's client hears of the fills

    async def stop(self) -> None:
        if self.ib is not None:
            self.ib.disconnect()
        if self.http is not None:
            await self.http.close()
        if self.tree is not None:
            with contextlib.suppress(Exception):
                await self.tree.stop()
        await self.procs.stop_all()

    # --- one request per system and operation ---------------------------------------

    def systems(self, op: Op) -> list[str]:
        out = ["ibhost"] if self.ibhost_status == "ready" else []
        if self.peers[op.original].running:
            out.append(op.original)
        return [*out, "direct"]

    def base_url(self, system: str) -> str:
        return str(self.tree.url) if system == "ibhost" else self.peers[system].url

    def request(self, op: Op, system: str) -> Callable[[], Awaitable[int]]:
        """A function sending ``op`` once to ``system``; it returns the answer's size
        (bars, chain expirations, positions, 1) and raises Failed on a wrong answer.
        Each system walks its own copy of the same sequence of symbols and days."""
        s = self.suite
        picks = iter(range(10**9))

        def pick() -> tuple[str, dt.date]:
            i = next(picks)
            return s.SYMBOLS[i % len(s.SYMBOLS)], s.WEEKDAYS[(i // len(s.SYMBOLS)) %
                                                             len(s.WEEKDAYS)]

        def window(d: dt.date) -> tuple[dt.datetime, dt.datetime]:
            # as KTRDR's provider asks for a day: midnight to midnight, end inclusive
            end = dt.datetime.combine(d + dt.timedelta(days=1), dt.time(), dt.UTC)
            return end - dt.timedelta(days=30 if op.key == "bars_1h_30d" else 1), end

        if system == "direct":
            return self.direct_request(op, pick, window)
        url = self.base_url(system)
        http = self.http

        async def get(path: str) -> Any:
            async with http.get(url + path) as r:
                body = await r.read()
                if r.status != 200:
                    raise Failed(f"{r.status} {body[:200]!r}")
                return json.loads(body)

        async def post(path: str, payload: dict[str, Any]) -> Any:
            async with http.post(url + path, json=payload) as r:
                body = await r.read()
                if r.status != 200:
                    raise Failed(f"{r.status} {body[:200]!r}")
                return json.loads(body)

        if op.original == "ktrdr":
            tf = "1h" if op.key == "bars_1h_30d" else "1m"

            async def historical() -> int:
                sym, d = pick()
                start, end = window(d)
                ans = await post("/data/historical", {
                    "symbol": sym, "timeframe": tf, "start": start.isoformat(),
                    "end": end.isoformat()})
                if not ans.get("success"):
                    raise Failed(str(ans.get("error"))[:200])
                return int(ans.get("rows") or 0)

            return historical

        async def market_data() -> int:
            ans = await get("/market-data/AAPL")
            if not ans.get("last") and not ans.get("bid"):
                raise Failed(f"no price: {ans}")
            return 1

        async def option_chain() -> int:
            return len((await get("/option-chain/AAPL"))["expirations"])

        async def positions() -> int:
            return int((await get("/positions"))["count"])

        async def option_quote() -> int:
            ans = await post("/option-quote", self.option)
            if ans.get("bid") is None and ans.get("last") is None:
                raise Failed(f"no price: {ans}")
            return 1

        return {"market_data": market_data, "option_chain": option_chain,
                "positions": positions, "option_quote": option_quote}[op.key]

    def direct_request(self, op: Op, pick: Callable[[], tuple[str, dt.date]],
                       window: Callable[[dt.date], tuple[dt.datetime, dt.datetime]]
                       ) -> Callable[[], Awaitable[int]]:
        """What a direct ib_async client asks IB for the same answer: one historical
        request for the window (RTH, as both services ask), a snapshot, the chain's
        parameters, the library's synced positions (no message to IB, as the bridge
        and ibhost answer them too), the option's and the underlying's snapshots."""
        ib = self.ib

        async def historical() -> int:
            sym, d = pick()
            start, end = window(d)
            # the window's trading days (the dates used have no holiday in them): one
            # request for the same bars the services answer with, no more
            days = sum(1 for i in range((end - start).days)
                       if (start + dt.timedelta(days=i)).weekday() < 5)
            dur, size = (f"{days} D", "1 hour") if op.key == "bars_1h_30d" else ("1 D",
                                                                                  "1 min")
            bars = await ib.reqHistoricalDataAsync(
                self.contracts[sym], end.strftime("%Y%m%d-%H:%M:%S"), dur, size, "TRADES",
                True, 2)
            if not bars:
                raise Failed("no bars")
            return len(bars)

        async def market_data() -> int:
            [t] = await ib.reqTickersAsync(self.contracts["AAPL"])
            if not t.last == t.last and not t.bid == t.bid:  # both NaN
                raise Failed("no price")
            return 1

        async def option_chain() -> int:
            aapl = self.contracts["AAPL"]
            chains = await ib.reqSecDefOptParamsAsync("AAPL", "", "STK", aapl.conId)
            return len(next(c for c in chains if c.exchange == "SMART").expirations)

        async def positions() -> int:
            return len(ib.positions())

        async def option_quote() -> int:
            opt, _ = await asyncio.gather(ib.reqTickersAsync(self.option_contract),
                                            ib.reqTickersAsync(self.contracts["AAPL"]))
            if not opt:
                raise Failed("no option quote")
            return 1

        if op.original == "ktrdr":
            return historical
        return {"market_data": market_data, "option_chain": option_chain,
                "positions": positions, "option_quote": option_quote}[op.key]

    # --- timing ----------------------------------------------------------------------

    async def measure(self, op: Op) -> dict[str, Any]:
        """Every system's request for ``op`` at 1 and 10 clients: warmed first (one
        request per symbol), then rounds in which each system in turn serves every
        client once, the order rotated each round."""
        systems = self.systems(op)
        fns = {name: self.request(op, name) for name in systems}
        # a p99 of 40 answers is their largest but one: where answers come in
        # milliseconds (the bridge's operations) there are 200 at one client and 20
        # rounds at ten; KTRDR's service takes a second an answer, so 40 and 10 there
        if self.quick:
            rounds = {1: 4, 10: 1}
        else:
            rounds = {1: 40, 10: 10} if op.original == "ktrdr" else {1: 200, 10: 20}
        out: dict[str, Any] = {}
        warm = len(self.suite.SYMBOLS) if op.original == "ktrdr" else 2
        first_size: dict[str, int | None] = {}
        warm_errors: dict[str, str] = {}
        for name, fn in fns.items():
            for _ in range(warm):
                try:
                    size = await asyncio.wait_for(fn(), REQUEST_TIMEOUT)
                    first_size.setdefault(name, size)
                except Exception as e:
                    warm_errors.setdefault(name, f"{type(e).__name__}: {e}"[:300])
        await asyncio.sleep(self.suite.DIRECT_INTERVAL + 0.1)  # ib_async's window empties
        for n in (1, 10):
            samples: dict[str, list[float]] = {name: [] for name in systems}
            errors: dict[str, list[str]] = {name: [] for name in systems}
            sizes: dict[str, set[int]] = {name: set() for name in systems}

            async def one(name: str, fn: Callable[[], Awaitable[int]],
                          samples: dict[str, list[float]] = samples,
                          errors: dict[str, list[str]] = errors,
                          sizes: dict[str, set[int]] = sizes) -> None:
                t0 = time.perf_counter()
                try:
                    size = await asyncio.wait_for(fn(), REQUEST_TIMEOUT)
                except Exception as e:
                    errors[name].append(f"{type(e).__name__}: {e}"[:300])
                    return
                samples[name].append(time.perf_counter() - t0)
                sizes[name].add(size)

            for r in range(rounds[n]):
                order = systems[r % len(systems):] + systems[:r % len(systems)]
                for name in order:
                    await asyncio.gather(*(one(name, fns[name]) for _ in range(n)))
                    if n == 1:
                        await asyncio.sleep(ONE_CLIENT_GAP)
            row: dict[str, Any] = {"op": op.key, "title": op.title, "path": op.path,
                                   "clients": n, "original": op.original}
            for name in systems:
                p50, p99 = pct(samples[name], 0.5), pct(samples[name], 0.99)
                row[name] = {
                    "p50_ms": round(p50 * 1000, 1) if p50 is not None else None,
                    "p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
                    "n": len(samples[name]), "errors": len(errors[name]),
                    "answer_sizes": sorted(sizes[name])}
                if errors[name]:
                    row[name]["first_error"] = errors[name][0]
                if name in warm_errors and n == 1:
                    row[name]["warm_up_error"] = warm_errors[name]
            ib_row = row.get("ibhost")
            if ib_row:
                orig = row.get(op.original)
                row["ibhost_vs_original"] = {
                    "p50": ratio(ib_row["p50_ms"], orig["p50_ms"]) if orig else None,
                    "p99": ratio(ib_row["p99_ms"], orig["p99_ms"]) if orig else None}
                row["ibhost_vs_direct"] = {
                    "p50": ratio(ib_row["p50_ms"], row["direct"]["p50_ms"]),
                    "p99": ratio(ib_row["p99_ms"], row["direct"]["p99_ms"])}
            out[f"{op.key}@{n}"] = row
            if n == 1:
                await asyncio.sleep(self.suite.DIRECT_INTERVAL + 0.1)
        return out

    def systems_summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ibhost": {"title": "ibhost", "status": self.ibhost_status}}
        if self.ibhost_reason:
            out["ibhost"]["reason"] = self.ibhost_reason
        for p in self.peers.values():
            out[p.key] = p.summary()
        out["direct"] = {"title": "direct ib_async", "status": "ready"}
        return out


# --- the table -----------------------------------------------------------------------


def fmt(x: dict[str, Any] | None) -> str:
    if not x:
        return "-"
    if x["p50_ms"] is None:
        return f"errors: {x['errors']}"
    text = f"{x['p50_ms']:g} / {x['p99_ms']:g}"
    if x["errors"]:
        text += f" ({x['errors']} errors)"
    return text


def fmt_ratio(r: dict[str, Any] | None) -> str:
    if not r or r.get("p50") is None:
        return "-"
    return f"{r['p50']:.2f} / {r['p99']:.2f}"


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    sim = r["simulator"]
    lines = [f"# ibhost bench --peers{' --quick' if r['quick'] else ''}", "",
             f"{r['started']} on {m['host']}: {m['cpu']} ({m['cpus']} CPUs, "
             f"{m['memory_gib']} GiB), {m['system']}, Python {m['python']}.", "",
             f"Each system has an `ibhost sim` of its own: seed {sim['seed']}, start time "
             f"{sim['start_time']} UTC, pacing windows x{sim['pacing_scale']}. Direct: one "
             f"ib_async client, 45 requests per {r['direct_interval_s']} s.", "",
             "## Systems", ""]
    for s in r["systems"].values():
        line = f"- {s['title']}: {s['status']}"
        if s.get("path"):
            line += f" ({s['path']}" + (f", commit {s['commit'][:12]})" if s.get("commit")
                                        else ")")
        if s["status"] == "not given":
            line += f": give a checkout with `{s['flag']} PATH` to compare with it"
        elif s.get("reason"):
            reason = s["reason"].replace("\n", "\n      ")
            line += f": {reason}"
        lines.append(line)
    lines += ["", "## Latency, ms (p50 / p99)", "",
              "Each operation through each system's own HTTP path (ibhost at the original's "
              "path), the systems taking turns round by round. One client sends a request "
              f"every {ONE_CLIENT_GAP * 1000:.0f} ms; 10 clients send at once. Answer sizes: "
              "bars, expirations or positions in each answer.", "",
              "| operation | original | clients | original | ibhost | direct ib_async "
              "| ibhost / original | ibhost / direct | answer sizes (original; ibhost; direct) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in r.get("latency", {}).values():
        orig = row["original"]
        orig_cell = fmt(row[orig]) if orig in row else r["systems"][orig]["status"]
        sizes = "; ".join("/".join(map(str, row[k]["answer_sizes"])) or "-"
                          if k in row else "-" for k in (orig, "ibhost", "direct"))
        lines.append(
            f"| {row['title']} `{row['path']}` | {r['systems'][orig]['title']} | "
            f"{row['clients']} | {orig_cell} | {fmt(row.get('ibhost'))} | "
            f"{fmt(row.get('direct'))} | {fmt_ratio(row.get('ibhost_vs_original'))} | "
            f"{fmt_ratio(row.get('ibhost_vs_direct'))} | {sizes} |")
    errs = [(k, name, row[name]) for k, row in r.get("latency", {}).items()
            for name in ("ibhost", "ktrdr", "bridge", "direct")
            if isinstance(row.get(name), dict) and
            (row[name].get("first_error") or row[name].get("warm_up_error"))]
    if errs:
        lines += ["", "## Errors", ""]
        for k, name, x in errs:
            if x.get("first_error"):
                lines.append(f"- {k} {name}: {x['errors']} errors; the first: "
                             f"{x['first_error']}")
            if x.get("warm_up_error"):
                lines.append(f"- {k} {name}, while warming up (not timed): "
                             f"{x['warm_up_error']}")
    notes = r.get("notes")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


NOTES = [
    "KTRDR's service sleeps 0.5 s in its endpoint and 0.5 s in its fetcher before each "
    "historical request, and asks IB for a rounded duration (30 days: 4 W), then filters.",
    "Option chains: the bridge keeps them 300 s and ibhost connector.cache_max_age; the "
    "direct client asks IB each time. Quotes: the bridge keeps them 2 s; ibhost holds a "
    "contract snapshotted twice within streams.snapshot_hold (30 s) as a live quote and "
    "answers its next snapshots from it (no message to IB; the option quote's option "
    "and underlying alike); the direct client asks IB each time.",
    "Rounds: 40 requests per system at one client and 10 rounds at ten for KTRDR's "
    "operations (its service takes a second an answer), 200 and 20 for the bridge's.",
    "Positions: the bridge, ibhost and the direct client all answer from the library's "
    "synced state (no message to IB); the direct figure is ib.positions() alone.",
    "The direct option quote is the option's and the underlying's snapshots at once, the "
    "option qualified once beforehand (the bridge qualifies it on every request).",
]


# --- running it ----------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ibhost bench --peers")
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--ktrdr", default=None, metavar="PATH",
                    help="a checkout of kpiteira/ktrdr (its ib-host-service/ is started)")
    ap.add_argument("--bridge", default=None, metavar="PATH",
                    help="a checkout of dart-technologies/wheel-strat "
                         "(scripts/bridge/ibkr_bridge.py is started)")
    ap.add_argument("--peer-python", default=sys.executable, metavar="PYTHON",
                    help="the interpreter the peers run with (default: this one); it needs "
                         "their packages")
    ap.add_argument("--out", default=str(HERE / "results"),
                    help="directory for the JSON and Markdown results")
    return ap


def say(text: str) -> None:
    """A line on stderr (stdout carries the table alone)."""
    print(f"ibhost bench --peers: {text}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace, run_dir: Path, steps: Any) -> dict[str, Any]:
    suite = load_suite()
    peers = plan(args.ktrdr, args.bridge, args.peer_python, run_dir, suite.KEY)
    for p in peers.values():
        if p.status == "not given":
            say(f"{p.title}: not given ({p.flag} PATH); ibhost is measured against "
                       "direct ib_async alone for its operations")
        elif p.status in ("not started", "failed to start"):
            say(f"{p.title}: not started: {p.reason}")
    b = PeerBench(peers, args.quick, run_dir)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, lambda: task.cancel() if task else None)
    try:
        steps.begin("start the simulators, the ibhost tree and the peers")
        t0 = time.monotonic()
        await b.start(say)
        steps.update(1, f"start took {time.monotonic() - t0:.1f}s")
        b.results["latency"] = {}
        for op in OPS:
            steps.begin(f"{op.title} ({op.path})")
            t0 = time.monotonic()
            b.results["latency"].update(await b.measure(op))
            steps.update(1, f"{op.title} took {time.monotonic() - t0:.1f}s")
    finally:
        b.results["systems"] = b.systems_summary()
        b.results["checks"] = b.checks
        b.results["notes"] = NOTES
        await b.stop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
    return b.results


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    suite = load_suite()
    t0 = time.monotonic()
    steps = suite.Progress(1 + len(OPS), unit="step", desc="ibhost bench --peers",
                           rate=False, tty=sys.stderr.isatty(),
                           emit=lambda text: print(text, file=sys.stderr, flush=True))
    run_dir = Path(tempfile.mkdtemp(prefix="ibp-"))  # short: Unix socket paths
    try:
        results = asyncio.run(run(args, run_dir, steps))
    except (KeyboardInterrupt, asyncio.CancelledError):
        shutil.rmtree(run_dir, ignore_errors=True)
        say("interrupted; every process it started is stopped")
        return 130
    finally:
        steps.close()
    failed = [s for s in results["systems"].values() if s["status"] not in
              ("ready", "not given")]
    if not failed:  # the peers' output and working directories (kept when one failed)
        shutil.rmtree(run_dir, ignore_errors=True)
    results["finished"] = dt.datetime.now(dt.UTC).isoformat()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "peers-quick" if args.quick else "peers"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    md = markdown(results)
    (out / f"{stem}.md").write_text(md)
    print(md)
    print(f"written: {out / (stem + '.json')}, {out / (stem + '.md')}")
    if failed:
        print(f"the peers' output and working directories: {run_dir}")
    print(f"ibhost bench --peers took {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
