"""``ibhost soak --minutes N``: the whole tree on the simulator under mixed load, a
fault every ``--fault-every`` seconds, and the invariants checked throughout.

Load: historical bars (compared with the simulator's own truth for the same seed),
symbol validation, head timestamps, snapshots, orders with an idempotency key
(each sent twice: the second must answer the first's order) and without, health;
a live quote stream and an order-event stream follow along (the callers and their
checks: soakload.py). Faults, in a seeded random order: dropped connections, the
port closed (a nightly reset), a gateway restart, a restart that waits for a login,
1100 then 1101 or 1102, market-data and historical farm blips, a frozen gateway,
kill -9 of each program, a wake.

Invariants, counted and printed as a table (exit 1 on any violation): no wrong
data, no order doubled or lost, no 5xx other than 503/504 (IB or a program not
ready: the truthful answer during a fault), no request hanging past its deadline,
no pacing violation at the simulator, order events with no gap in their
sequence, quotes flowing again within 20 s of every fault, no program's memory
growing without bound.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .proc import rss_mib
from .soakload import Load

PY = [sys.executable, "-m", "ibhost.cli"]
KEY = "soak-key-0123456789abcdef"
SIM_START = dt.datetime(2025, 12, 10, 14, 35, tzinfo=dt.UTC)  # a Wednesday, 09:35 ET
SEED = 11
PROGRAMS = ("connector", "gateway", "gapfill", "watchdog")
RESUME_WITHIN = 20.0
# Memory a program may grow by per order the simulator (IB) holds at the end: the
# connector keeps every order IB reports for the day, as the library does (its Order,
# status, log: about 12 KiB each by tracemalloc, 18 KiB of RSS an order in a 3-minute
# soak); the gateway keeps keyed orders' answers for their idempotency lifetime.
# Growth beyond the state IB itself keeps is a leak.
PER_ORDER_KIB = {"connector": 24.0, "gateway": 2.0}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("soak", help="mixed load and random faults against the tree on the "
                                    "simulator; checks the invariants (exit 1 on a violation)")
    p.add_argument("--minutes", type=float, default=10.0, help="how long (10)")
    p.add_argument("--fault-every", type=float, default=60.0,
                   help="seconds between faults, on average (60)")
    p.add_argument("--callers", type=int, default=6, help="concurrent callers (6)")
    p.add_argument("--seed", type=int, default=1, help="the faults' and the load's order")
    p.add_argument("--json", action="store_true", help="the result as JSON as well")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    soak = Soak(args.minutes * 60, args.fault_every, args.callers, args.seed)
    try:
        result = asyncio.run(soak.main())
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("ibhost soak: stopped before its end (the tree and simulator it started "
              "are stopped)", file=sys.stderr)
        return 130
    print(table(result))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 1 if result["violations"] else 0


class Soak:
    def __init__(self, seconds: float, fault_every: float, callers: int, seed: int) -> None:
        self.seconds = seconds
        self.fault_every = fault_every
        self.callers = callers
        self.rng = random.Random(seed)
        self.home = Path(tempfile.mkdtemp(prefix="ibs-"))
        self.count: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.violations: list[str] = []
        self.sim: asyncio.subprocess.Process | None = None
        self.sup: asyncio.subprocess.Process | None = None
        self.url = ""
        self.last_fault = 0.0
        self.quote_times: list[float] = []
        self.resume_waits: list[float] = []
        self.order_seqs: list[int] = []
        from .sim.market import Market
        from .sim.universe import Universe

        self.market = Market(Universe(lambda: SIM_START.timestamp()), SEED)
        from .ipc.client import UnixClient

        # the simulator's control socket (connected on first use)
        self.simctl = UnixClient(str(self.home / "run" / "sim.sock"))

    # --- the tree ----------------------------------------------------------------------

    async def start(self) -> None:
        from . import tree

        tree.prepare_home(self.home)
        sock = self.simctl.path
        self.sim = await asyncio.create_subprocess_exec(
            *PY, "sim", "--port", "0", "--seed", str(SEED), "--control", str(sock),
            "--pacing-scale", "0.01", "--log-level", "WARNING", "--tick-interval", "0.25",
            "--start-time", SIM_START.strftime("%Y-%m-%dT%H:%M:%SZ"),
            stdout=asyncio.subprocess.PIPE, start_new_session=True)
        assert self.sim.stdout is not None
        line = (await self.sim.stdout.readline()).decode()
        match = re.search(r":(\d+)", line)
        assert match is not None, line
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        (self.home / "ibhost.toml").write_text(f"""
[ib]
port = {match.group(1)}
settle_delay = 0.2
[pacing]
scale = 0.01
[gateway]
port = {port}
api_key = "{KEY}"
log_level = "WARNING"
[connector]
log_level = "WARNING"
[trading]
enabled = true
max_notional = 100000000
[watchdog]
region = "none"
restart_cooldown = 5
""")
        self.url = f"http://127.0.0.1:{port}"
        self.sup = await tree.start_supervisord(self.home)
        self.supervisor = tree.Supervisor(self.home)
        await self.wait_ok(90)

    async def stop(self) -> None:
        from . import tree

        if self.sup is not None:
            await tree.stop_supervisord(self.sup)
        if self.sim is not None and self.sim.returncode is None:
            self.sim.send_signal(signal.SIGTERM)
            await self.sim.wait()
        await self.simctl.close()
        shutil.rmtree(self.home, ignore_errors=True)

    async def wait_ok(self, timeout: float) -> None:
        import aiohttp

        end = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < end:
                try:
                    async with http.get(self.url + "/v1/health?connect=true") as r:
                        if (await r.json()).get("status") == "ok":
                            return
                except (aiohttp.ClientError, OSError, ValueError):
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError("the tree did not become healthy")

    def rss(self) -> dict[str, float]:
        out = {}
        for p in self.supervisor.processes():
            if p["pid"]:
                out[p["name"].split(":")[-1]] = round(rss_mib(p["pid"]), 1)
        return out

    async def sim_state(self, order_ref: str = "") -> dict[str, Any]:
        """The simulator's state; with ``order_ref``, only that ref's orders (all of
        them, thousands after a while, would cost the simulator's loop each time)."""
        path = f"/state?orderRef={order_ref}" if order_ref else "/state"
        state: dict[str, Any] = await self.simctl.request("GET", path)
        return state

    # --- streams -----------------------------------------------------------------------

    async def follow(self, query: dict[str, Any], on_event: Any) -> None:
        """One stream consumer: ibhost's own client, which reconnects and resumes order
        events by Last-Event-ID by itself."""
        from ibhost_client import AsyncIBHostClient

        async with AsyncIBHostClient(self.url, api_key=KEY, backoff=0.5,
                                     max_backoff=1.0) as client:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.end - time.monotonic()):
                    async for ev in client.events(**query):
                        on_event(ev)

    def on_quote(self, ev: dict[str, Any]) -> None:
        if ev.get("type") == "quote":
            now = time.monotonic()
            if self.last_fault and (not self.quote_times or
                                    self.quote_times[-1] < self.last_fault):
                self.resume_waits.append(now - self.last_fault)
            self.quote_times.append(now)

    def on_order(self, ev: dict[str, Any]) -> None:
        if ev.get("type") == "order":
            self.order_seqs.append(int(ev["seq"]))

    # --- faults ------------------------------------------------------------------------

    FAULTS = ("drop", "nightly-reset", "gateway-restart", "login-wait", "1101", "1102",
              "farm-2103", "farm-2105", "freeze", "kill-connector", "kill-gateway",
              "kill-gapfill", "kill-watchdog", "wake")

    async def fault(self, name: str) -> None:
        f = self.simctl

        async def sim(fault: str, **params: Any) -> None:
            await f.request("POST", f"/faults/{fault}", json_body=params)

        if name == "drop":
            await sim("drop")
        elif name == "nightly-reset":
            await sim("close-port", seconds=8.0)
        elif name == "gateway-restart":
            await sim("restart", downtime=2.0)
        elif name == "login-wait":  # back up, but waiting for a second factor a while
            await sim("delay-ready", seconds=6.0)
            await sim("drop")
            await asyncio.sleep(7.0)
            await sim("delay-ready", seconds=0.0)
        elif name in ("1101", "1102"):
            await sim("connectivity-lost", restore=name, after=3.0)
        elif name.startswith("farm-"):
            await sim("farm", code=int(name[5:]), after=3.0)
        elif name == "freeze":
            await sim("freeze")
            await asyncio.sleep(4.0)
            await sim("thaw")
        elif name.startswith("kill-"):
            pid = self.supervisor.process(f"ibhost:{name[5:]}")["pid"]
            if pid:
                os.kill(pid, signal.SIGKILL)
        elif name == "wake":
            await asyncio.to_thread(subprocess.run, [*PY, "ctl", "--home", str(self.home),
                                                     "wake"], capture_output=True,
                                    timeout=30)
        self.faults[name] += 1
        self.last_fault = time.monotonic()

    async def faulter(self) -> None:
        order = list(self.FAULTS)
        self.rng.shuffle(order)
        i = 0
        while True:
            wait = self.fault_every * self.rng.uniform(0.7, 1.3)
            # a quiet end: quotes must be seen coming back after the last fault
            quiet = min(RESUME_WITHIN, max(6.0, self.seconds * 0.2))
            if time.monotonic() + wait > self.end - quiet:
                return
            await asyncio.sleep(wait)
            await self.fault(order[i % len(order)])
            i += 1

    # --- the run -----------------------------------------------------------------------

    async def main(self) -> dict[str, Any]:
        import aiohttp

        t0 = time.monotonic()
        # SIGTERM ends the run as Ctrl-C does: what it started is stopped first
        main = asyncio.current_task()
        assert main is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
        try:
            await self.start()
            await asyncio.sleep(5.0)  # warm: the first connections and caches
            rss_start = self.rss()
            self.end = time.monotonic() + self.seconds
            load = Load(self.url, KEY, self.market, rng=self.rng, end=self.end,
                        count=self.count, violation=self.violation, sim_state=self.sim_state)
            conn = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=conn,
                                             timeout=aiohttp.ClientTimeout(total=None)) as http:
                await asyncio.gather(
                    self.faulter(), *(load.caller(http, n) for n in range(self.callers)),
                    self.follow({"quotes": ["AAPL"]}, self.on_quote),
                    self.follow({"orders": True}, self.on_order))
            await asyncio.sleep(3.0)
            rss_end = self.rss()
            state = await self.sim_state()
        finally:
            await self.stop()
        pacing = len(state["stats"]["violations"])
        if pacing:
            self.violation(f"{pacing} pacing violation(s) at the simulator: "
                           f"{state['stats']['violations_by_rule']}")
        seqs = self.order_seqs
        if seqs and sorted(set(seqs)) != list(range(min(seqs), max(seqs) + 1)):
            self.violation("order events: a gap or a repeat in the sequence numbers")
        if len(seqs) != len(set(seqs)):
            self.violation("order events: an event delivered twice")
        if self.last_fault and self.end - self.last_fault >= RESUME_WITHIN and (
                not self.quote_times or self.quote_times[-1] < self.last_fault):
            self.violation(f"quotes never came back after the last fault "
                           f"({self.end - self.last_fault:.0f}s)")
        slow = [w for w in self.resume_waits if w > RESUME_WITHIN]
        if slow:
            self.violation(f"quotes came back later than {RESUME_WITHIN:g}s after "
                           f"{len(slow)} fault(s): {max(slow):.1f}s")
        held = len(state["orders"])
        for prog in PROGRAMS:
            a, b = rss_start.get(prog, 0.0), rss_end.get(prog, 0.0)
            allowed = a * 1.5 + 32 + held * PER_ORDER_KIB.get(prog, 0.0) / 1024
            if a and b > allowed:
                self.violation(f"{prog}: memory grew from {a:.0f} to {b:.0f} MiB "
                               f"(allowed {allowed:.0f} with {held} orders at IB)")
        return {"seconds": round(time.monotonic() - t0), "requests": dict(self.count),
                "faults": dict(self.faults), "violations": self.violations,
                "pacing_violations": pacing, "order_events": len(seqs),
                "orders_at_ib": held,
                "quote_events": len(self.quote_times),
                "quotes_back_after_fault_s": {
                    "max": round(max(self.resume_waits, default=0.0), 2),
                    "n": len(self.resume_waits)},
                "rss_start": rss_start, "rss_end": rss_end}

    def violation(self, text: str) -> None:
        self.violations.append(text)
        print(f"VIOLATION: {text}", file=sys.stderr, flush=True)



def table(r: dict[str, Any]) -> str:
    req = r["requests"]
    kinds = sorted(k for k in req if "." not in k)
    lines = [f"ibhost soak: {r['seconds']} s, faults: "
             + ", ".join(f"{k} x{v}" for k, v in sorted(r["faults"].items())), "",
             "| request | sent | unavailable (fault) | hung | wrong |", "|---|---|---|---|---|"]
    for k in kinds:
        lines.append(f"| {k} | {req[k]} | {req.get(k + '.unavailable', 0)} | "
                     f"{req.get(k + '.hung', 0)} | {req.get(k + '.wrong', 0)} |")
    lines += ["", "| invariant | value |", "|---|---|",
              f"| orders doubled | {req.get('orders.doubled', 0)} |",
              f"| orders lost | {req.get('orders.lost', 0)} |",
              f"| pacing violations at the simulator | {r['pacing_violations']} |",
              f"| order events (no gap, no repeat) | {r['order_events']} |",
              f"| orders at IB at the end | {r['orders_at_ib']} |",
              f"| quote events | {r['quote_events']} |",
              f"| quotes back after a fault, max s (n) | "
              f"{r['quotes_back_after_fault_s']['max']} "
              f"({r['quotes_back_after_fault_s']['n']}) |",
              f"| violations | {len(r['violations'])} |", "",
              "| program | RSS start MiB | RSS end MiB |", "|---|---|---|"]
    for p in PROGRAMS:
        lines.append(f"| {p} | {r['rss_start'].get(p)} | {r['rss_end'].get(p)} |")
    for v in r["violations"][:20]:
        lines.append(f"VIOLATION: {v}")
    return "\n".join(lines)
