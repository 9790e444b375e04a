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


# Exit codes (docs/operations.md, "ibhost ctl"): scripts and resume hooks test these.
OK = 0           # done, and everything asked about is well
DOWN = 1         # the tree answered, but something is down: IB, a program, a failed action
USAGE = 2        # a usage or configuration error (argparse exits 2 too)
UNREACHABLE = 3  # nothing answered: the tree is not running here (or another --home)


def _failed(e: Exception) -> dict[str, Any]:
    """A call's failure as the answer's ``{"error": ...}``; ``unreachable`` when nothing
    listens on the socket (as opposed to a program that is there but failing)."""
    out: dict[str, Any] = {"error": str(e)}
    if isinstance(e, IpcError) and e.unreachable:
        out["unreachable"] = True
    return out


async def _ask(client: ConnectorClient | UnixClient,
               call: Callable[[], Awaitable[Any]]) -> Any:
    """One call's answer, or {"error": ...}; the client is closed after it."""
    try:
        return await call()
    except (IpcError, IbhostError) as e:
        return _failed(e)
    finally:
        await client.close()


async def _get(client: UnixClient, method: str, path: str, body: Any = None) -> Any:
    return await _ask(client, lambda: client.request(method, path, json_body=body))


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_mod.load(home=args.home)
    except config_mod.ConfigError as e:
        print(f"ibhost ctl: configuration error: {e}", file=sys.stderr)
        return USAGE
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
            out = {"watchdog": out, "connector": asyncio.run(
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
            out = {"program": args.program, "error": f"supervisord not reachable: {e}",
                   "unreachable": True}
        else:
            out = {"program": args.program, "log": text}
    code, lines = verdict(args.ctl, out)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return code
    if code == UNREACHABLE:
        print(f"ibhost ctl {args.ctl}: cannot reach the tree in {cfg.home} (is it running? "
              "another home: --home DIR or IBHOST_HOME)", file=sys.stderr)
        print("\n".join(f"  {line}" for line in lines), file=sys.stderr)
        return code
    if args.ctl == "tail":
        sys.stdout.write(out["log"])
        return code
    print("\n".join(lines))
    return code


def _what(answer: dict[str, Any]) -> str:
    return "not running" if answer.get("unreachable") else "not answering"


def _down(program: str, answer: dict[str, Any]) -> str:
    return f"{program}: {_what(answer)} ({answer['error']})"


def verdict(cmd: str, out: Any) -> tuple[int, list[str]]:
    """The exit code for a command's answer, and the answer in lines of text."""
    if cmd == "status":
        return _status(out)
    if cmd == "tail":
        return (UNREACHABLE, [out["error"]]) if "error" in out else (OK, [])
    if cmd == "wake" and "watchdog" in out:  # no watchdog: the connector was asked
        w, c = out["watchdog"], out["connector"]
        if "error" in c:
            code = UNREACHABLE if w.get("unreachable") and c.get("unreachable") else DOWN
            return code, [_down("watchdog", w), _down("connector", c)]
        return OK, [_down("watchdog", w) + "; asked the connector directly",
                    f"reconnect requested ({c.get('reason')})"]
    if "error" in out:
        program = {"scan": "gap-filler", "wake": "watchdog"}.get(cmd, "connector")
        return (UNREACHABLE if out.get("unreachable") else DOWN,
                [_down(program, out)])
    if cmd == "reconnect":
        return OK, [f"reconnect requested ({out.get('reason')})"]
    if cmd == "wake":
        r = str(out.get("reconnect") or "")
        line = f"wake recorded by the watchdog ({out.get('source')}); reconnect {r}"
        return (OK if r == "requested" else DOWN), [line]
    if cmd == "scan":
        return _scan(out)
    return OK, [json.dumps(out, default=str)]


def _scan(out: dict[str, Any]) -> tuple[int, list[str]]:
    files = out.get("files") or []
    lines = [f"scanned {len(files)} file{'s' * (len(files) != 1)} in "
             f"{out.get('seconds', 0):.2f}s" + ("" if files else " (none due)")]
    code = OK
    for f in files:
        if "skipped" in f:
            code = DOWN
            lines.append(f"  {f['file']}: skipped, waiting for {f['skipped']}")
            continue
        line = (f"  {f['file']}: {f['gapsFound']} gaps found, {f['gapsFilled']} filled, "
                f"{f['barsWritten']:,} bars written, last bar {f['lastBar'] or 'none'}")
        if f.get("missingBars"):
            line += f", {f['missingBars']:,} still missing"
        if f.get("lastError"):
            code = DOWN
            line += f"; ERROR {f['lastError']}"
        lines.append(line)
    return code, lines


def _status(out: dict[str, Any]) -> tuple[int, list[str]]:
    c, progs, w = out["connector"], out["programs"], out["watchdog"]
    if c.get("unreachable") and w.get("unreachable") and "error" in progs:
        return UNREACHABLE, [_down("connector", c), _down("watchdog", w), progs["error"]]
    lines: list[str] = []
    problems: list[str] = []
    if "error" in c:
        lines.append(_down("connector", c))
        problems.append("the connector is " + _what(c))
    else:
        lines.append(f"connection: {c['status']} ({c['state']}: {c['reason']}), client id "
                     f"{c['clientId']}, farms "
                     + (", ".join(f"{k} {v}" for k, v in c["farms"].items()) or "none")
                     + (" — COMPETING SESSION" if c.get("competingSession") else ""))
        if c["status"] not in ("ok", "degraded"):
            problems.append(f"IB connection {c['status']}")
    if "error" in progs:
        lines.append(f"programs: {progs['error']}")
        problems.append("supervisord is not answering")
    else:
        lines.append("programs: " + ", ".join(f"{k} {v['state']}" for k, v in progs.items()))
        problems += [f"{k} {v['state']}" for k, v in progs.items() if v["state"] != "RUNNING"]
    if "error" in w:
        lines.append(_down("watchdog", w))
        problems.append("the watchdog is " + _what(w))
    else:
        restarts = sum(p["restartsTotal"] for p in w["programs"].values())
        lines.append(f"watchdog: {w['wakesTotal']} wakes seen, {restarts} restarts"
                     + (f", in maintenance '{w['maintenance']}'" if w.get("maintenance")
                        else ""))
        o = w.get("outage")
        if o:
            lines.append(f"IB outage: down {o['downSeconds']:.0f}s"
                         + (f" (began in maintenance '{o['beganInMaintenance']}')"
                            if o.get("beganInMaintenance") else "")
                         + (f"; ESCALATED: {o['message']}" if o.get("escalatedAt") else ""))
    if problems:
        lines.append("DOWN: " + "; ".join(problems))
    else:
        lines.append("ok: IB connected" + (" (degraded)" if c["status"] == "degraded" else "")
                     + ", every program running")
    return (DOWN if problems else OK), lines
