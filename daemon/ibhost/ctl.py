"""``ibhost ctl status|reconnect|wake|scan|tail``: one CLI over the control sockets and
supervisord. Human-readable by default, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from . import config as config_mod
from .connector.client import ConnectorClient
from .errors import IbhostError
from .ipc import IpcError
from .ipc.client import UnixClient
from .tree import PROGRAMS, Supervisor, programs


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ctl", help="control a running tree (status, reconnect, wake, tail)")
    p.add_argument("--home", default=None, help="ibhost home (default $IBHOST_HOME or "
                                                "~/.ibhost)")
    p.add_argument("--json", action="store_true", help="print JSON")
    cs = p.add_subparsers(dest="ctl", required=True)
    st = cs.add_parser("status", help="connection, programs, watchdog")
    r = cs.add_parser("reconnect", help="make the connector drop and reconnect now")
    r.add_argument("--reason", default="ibhost ctl reconnect")
    w = cs.add_parser("wake", help="tell the watchdog the machine woke up (OS resume hooks)")
    w.add_argument("--source", default="ibhost ctl wake")
    sc = cs.add_parser("scan", help="ask the gap-filler to scan now (and wait for it)")
    sc.add_argument("files", nargs="*", help="only these files (AAPL_1h.csv ...)")
    t = cs.add_parser("tail", help="the end of a program's log")
    t.add_argument("program", choices=PROGRAMS)
    t.add_argument("-n", "--bytes", type=int, default=4000)
    for sp in (st, r, w, sc, t):  # `ctl status --json` as well as `ctl --json status`
        sp.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON")
    p.set_defaults(func=run)


async def _ask(client: ConnectorClient | UnixClient,
               call: Callable[[], Awaitable[Any]]) -> Any:
    """One call's answer, or {"error": ...}; the client is closed after it."""
    try:
        return await call()
    except (IpcError, IbhostError) as e:
        return {"error": str(e)}
    finally:
        await client.close()


async def _get(client: UnixClient, method: str, path: str, body: Any = None) -> Any:
    return await _ask(client, lambda: client.request(method, path, json_body=body))


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_mod.load(home=args.home)
    except config_mod.ConfigError as e:
        print(f"ibhost ctl: configuration error: {e}", file=sys.stderr)
        return 2
    con = ConnectorClient(str(cfg.connector_socket), connect_timeout=2, read_timeout=5)
    wd = UnixClient(str(cfg.path(cfg.watchdog.socket)), connect_timeout=2, read_timeout=5)
    out: Any
    if args.ctl == "status":
        out = {"connector": asyncio.run(_ask(con, con.health)),
               "watchdog": asyncio.run(_get(wd, "GET", "/status"))}
        out["programs"] = programs(cfg.home)
    elif args.ctl == "reconnect":
        out = asyncio.run(_ask(con, lambda: con.reconnect(args.reason)))
    elif args.ctl == "wake":
        out = asyncio.run(_get(wd, "POST", "/wake", {"source": args.source}))
        if "error" in out:  # no watchdog: reconnect directly
            out = {"watchdog": out["error"], "connector": asyncio.run(
                _ask(con, lambda: con.reconnect(f"wake: {args.source}")))}
    elif args.ctl == "scan":
        gf = UnixClient(str(cfg.path(cfg.gapfill.socket)), connect_timeout=2,
                        read_timeout=cfg.gateway.connector_timeout)
        out = asyncio.run(_get(gf, "POST", "/scan",
                               {"files": args.files} if args.files else {}))
    else:
        try:
            text = Supervisor(cfg.home).tail(f"ibhost:{args.program}", args.bytes)
        except Exception as e:
            print(f"ibhost ctl: supervisord not reachable: {e}", file=sys.stderr)
            return 1
        out = {"program": args.program, "log": text}
        if not args.json:
            sys.stdout.write(text)
            return 0
    failed = isinstance(out, dict) and "error" in out
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        _human(args.ctl, out)
    return 1 if failed else 0


def _human(cmd: str, out: Any) -> None:
    if cmd != "status":
        print(out.get("error") or json.dumps(out, default=str))
        return
    c = out["connector"]
    if "error" in c:
        print(f"connector: not answering ({c['error']})")
    else:
        print(f"connection: {c['status']} ({c['state']}: {c['reason']}), client id "
              f"{c['clientId']}, farms "
              + ", ".join(f"{k} {v}" for k, v in c["farms"].items())
              + (" — COMPETING SESSION" if c.get("competingSession") else ""))
    progs = out["programs"]
    if "error" in progs:
        print(f"programs: {progs['error']}")
    else:
        print("programs: " + ", ".join(f"{k} {v['state']}" for k, v in progs.items()))
    w = out["watchdog"]
    if "error" in w:
        print(f"watchdog: not answering ({w['error']})")
    else:
        restarts = sum(p["restartsTotal"] for p in w["programs"].values())
        print(f"watchdog: {w['wakesTotal']} wakes seen, {restarts} restarts"
              + (f", in maintenance '{w['maintenance']}'" if w.get("maintenance") else ""))
        o = w.get("outage")
        if o:
            print(f"IB outage: down {o['downSeconds']:.0f}s"
                  + (f" (began in maintenance '{o['beganInMaintenance']}')"
                     if o.get("beganInMaintenance") else "")
                  + (f"; ESCALATED: {o['message']}" if o.get("escalatedAt") else ""))
