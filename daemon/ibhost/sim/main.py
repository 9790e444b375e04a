"""``ibhost sim`` and ``ibhost sim ctl``: argument parsing and the process entry points."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from ..ipc.server import stop_unix
from ..proc import setup_logging, stop_signals, wait_for_stop_signal
from .control import FAULTS, ControlError, SimControl, _ranges, _when, serve_control
from .server import Simulator

log = logging.getLogger("ibhost.sim")

DEFAULT_CONTROL = "ibhost-sim.sock"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sim", help="run the TWS API simulator (a fake IB Gateway)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=4002, help="TCP port (4002, a paper gateway's)")
    p.add_argument("--control", default=None,
                   help="Unix socket for the control interface (off unless given)")
    p.add_argument("--seed", type=int, default=0, help="seed for the price paths (0)")
    p.add_argument("--pacing-scale", type=float, default=1.0,
                   help="multiply every pacing window by this (0.01 for fast tests)")
    p.add_argument("--pacing", choices=("ib", "strict"), default="ib",
                   help="ib (default): IB's hard rules for bars of 30 s or less, a soft "
                        "throttle above; strict: the hard rules for every bar size")
    p.add_argument("--account", default="DU1234567", help="the managed (paper) account")
    p.add_argument("--ready-delay", type=float, default=0.0,
                   help="hold nextValidId/managedAccounts back this many seconds")
    p.add_argument("--tick-interval", type=float, default=0.5,
                   help="seconds between streamed quotes (0.5)")
    p.add_argument("--market-data-lines", type=int, default=100, metavar="N",
                   help="the user's market-data lines, shared by every client (100, IB's "
                        "minimum); beyond them reqMktData gets error 101")
    p.add_argument("--missing", action="append", default=[], metavar="SYM=START/END",
                   help="no bars for SYM in this UTC range (repeatable)")
    p.add_argument("--no-subscription", action="append", default=[], metavar="SYM[=CODE]",
                   help="market data for SYM needs a subscription (354 or 10089)")
    p.add_argument("--start-time", default=None, metavar="ISO",
                   help="simulated clock starts here and runs in real time "
                        "(e.g. 2025-11-20T15:00 for a market session on a weekend)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=run_sim)
    ctl = p.add_subparsers(dest="sim_cmd")
    c = ctl.add_parser("ctl", help="drive a running simulator's control socket")
    c.add_argument("--control", dest="ctl_path", default=DEFAULT_CONTROL)
    c.add_argument("--json", action="store_true", help="print raw JSON")
    cs = c.add_subparsers(dest="ctl_cmd", required=True)
    cs.add_parser("state", help="what the simulator has seen")
    for fault in FAULTS:
        fp = cs.add_parser(fault.name, help=fault.help)
        for prm in fault.params:
            fp.add_argument(f"--{prm.name}", default=None, required=prm.required,
                            help=prm.help or f"({prm.kind.__name__}, default {prm.default!r})")
    c.set_defaults(func=run_ctl)


def run_sim(args: argparse.Namespace) -> int:
    if getattr(args, "sim_cmd", None) == "ctl":
        return run_ctl(args)
    setup_logging(args.log_level.upper())
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        pass
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    stop = stop_signals()  # before announcing readiness
    try:
        start = _when(args.start_time) if args.start_time else None
    except ValueError as e:
        print(f"ibhost sim: --start-time: {e}", file=sys.stderr)
        return 2
    try:
        sim = Simulator(args.host, args.port, seed=args.seed, pacing_scale=args.pacing_scale,
                        pacing=args.pacing, account=args.account,
                        tick_interval=args.tick_interval, start_time=start,
                        max_lines=args.market_data_lines)
    except ValueError as e:
        print(f"ibhost sim: {e}", file=sys.stderr)
        return 2
    sim.delay_ready(args.ready_delay)
    try:
        for item in args.missing:
            sym, _, rng = item.partition("=")
            sim.set_missing(sym, _ranges([rng]))
        for item in args.no_subscription:
            sym, _, code = item.partition("=")
            sim.set_no_subscription(sym, int(code) if code else 354)
    except ValueError as e:
        print(f"ibhost sim: {e}", file=sys.stderr)
        return 2
    try:
        await sim.start()
    except OSError as e:
        print(f"ibhost sim: cannot listen on {args.host}:{args.port}: {e.strerror}",
              file=sys.stderr)
        return 1
    runner = None
    if args.control:
        runner = await serve_control(sim, args.control)
    print(f"ibhost sim listening on {sim.host}:{sim.port}"
          + (f", control {args.control}" if args.control else ""), flush=True)
    await wait_for_stop_signal(stop)
    log.info("stopping")
    await sim.stop()
    if runner is not None:
        await stop_unix(runner, args.control)
    return 0


def run_ctl(args: argparse.Namespace) -> int:
    client = SimControl(args.ctl_path)
    params = {}
    if args.ctl_cmd != "state":
        fault = next(f for f in FAULTS if f.name == args.ctl_cmd)
        for prm in fault.params:
            v = getattr(args, prm.name.replace("-", "_"), None)
            if v is not None:
                params[prm.name] = v
    try:
        if args.ctl_cmd == "state":
            result = asyncio.run(client.state())
        else:
            result = asyncio.run(client.fault(args.ctl_cmd, **params))
    except ControlError as e:
        print(f"ibhost sim ctl: {e}", file=sys.stderr)
        return 1
    if args.json or args.ctl_cmd != "state":
        print(json.dumps(result, indent=2))
    else:
        _print_state(result)
    return 0


def _print_state(st: dict[str, Any]) -> None:
    listening = "listening" if st["listening"] else "NOT listening"
    print(f"simulator {st['host']}:{st['port']} {listening}"
          f"{' FROZEN' if st['frozen'] else ''}, connectivity {st['connectivity']}")
    print("farms: " + ", ".join(f"{k} {'ok' if v else 'BROKEN'}" for k, v in st["farms"].items()))
    clients = ", ".join(f"{c['clientId']}{'' if c['ready'] else ' (syncing)'}"
                        for c in st["clients"]) or "none"
    print(f"clients: {clients}")
    stats = st["stats"]
    reqs = ", ".join(f"{k} {v}" for k, v in sorted(stats["requests"].items())) or "none"
    print(f"requests: {reqs}")
    viol = ", ".join(f"{k} {v}" for k, v in stats["violations_by_rule"].items()) or "none"
    print(f"pacing violations: {viol}")
    print(f"orders: {len(st['orders'])}, executions: {len(st['executions'])}, "
          f"positions: {st['positions'] or 'none'}")
