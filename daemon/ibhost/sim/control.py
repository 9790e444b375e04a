"""The simulator's control interface: HTTP/1.1 + JSON over a Unix socket.

One table (FAULTS) describes every fault and its parameters; the HTTP routes,
``ibhost sim ctl`` and the async client all come from it.

    curl --unix-socket run/sim.sock http://sim/state
    curl --unix-socket run/sim.sock -XPOST http://sim/faults/freeze
    ibhost sim ctl --control run/sim.sock close-port --seconds 60
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from ..ipc.server import serve_unix
from ..validate import bool_word
from .server import Simulator

SIM_KEY = web.AppKey("simulator", Simulator)


@dataclass(frozen=True)
class Param:
    name: str
    kind: type
    default: Any = None
    required: bool = False
    help: str = ""


@dataclass(frozen=True)
class Fault:
    name: str
    help: str
    params: tuple[Param, ...]
    apply: Callable[[Simulator, dict[str, Any]], Any]


def _ranges(value: Any) -> list[tuple[dt.datetime, dt.datetime]]:
    out = []
    for item in value:
        if isinstance(item, str):
            a, _, b = item.partition("/")
        else:
            a, b = item
        out.append((_when(a), _when(b)))
    return out


def _when(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


FAULTS: tuple[Fault, ...] = (
    Fault("drop", "close every client connection", (), lambda s, p: s.drop()),
    Fault("freeze", "keep sockets open but never answer (until thaw)", (),
          lambda s, p: s.freeze()),
    Fault("thaw", "answer again after freeze", (), lambda s, p: s.thaw()),
    Fault("close-port", "stop listening and drop clients for N seconds",
          (Param("seconds", float, 10.0, help="how long the port stays closed"),),
          lambda s, p: s.close_port(p["seconds"])),
    Fault("restart", "gateway restart: drop clients, forget orders/fills/ids",
          (Param("downtime", float, 0.0, help="seconds before listening again"),),
          lambda s, p: s.restart(p["downtime"])),
    Fault("delay-ready", "hold nextValidId/managedAccounts back by N seconds",
          (Param("seconds", float, 5.0),), lambda s, p: s.delay_ready(p["seconds"])),
    Fault("connectivity-lost", "send 1100, then 1101 or 1102 after N seconds",
          (Param("restore", str, "1102", help="1101 (data lost), 1102 (maintained) or none"),
           Param("after", float, 5.0)),
          lambda s, p: s.connectivity_lost(
              None if p["restore"] in ("none", "", None) else p["restore"], p["after"])),
    Fault("connectivity-restored", "send 1101 or 1102 now",
          (Param("code", str, "1102"),), lambda s, p: s.connectivity_restored(p["code"])),
    Fault("farm", "farm broken: 2103, 2105, 2157 or 2110; OK notice after N seconds",
          (Param("code", int, 2103, required=True), Param("after", float, 5.0)),
          lambda s, p: s.farm_broken(p["code"], p["after"])),
    Fault("competing-session", "10197 on market data while on",
          (Param("on", bool, True),), lambda s, p: s.set_competing_session(p["on"])),
    Fault("port-reset", "error 1300, then drop every connection", (),
          lambda s, p: s.port_reset()),
    Fault("pacing", "the next N historical requests fail with a pacing 162",
          (Param("count", int, 1),), lambda s, p: s.force_pacing(p["count"])),
    Fault("slow", "delay every reply by N milliseconds (0 turns it off)",
          (Param("ms", float, 500.0),), lambda s, p: s.slow(p["ms"])),
    Fault("missing", "no bars for SYMBOL in the given UTC ranges (START/END, ISO 8601)",
          (Param("symbol", str, required=True), Param("ranges", list, [], required=True)),
          lambda s, p: s.set_missing(p["symbol"], _ranges(p["ranges"]))),
    Fault("no-subscription", "market data for SYMBOL needs a subscription (354 or 10089; 0 "
          "clears)",
          (Param("symbol", str, required=True), Param("code", int, 354)),
          lambda s, p: s.set_no_subscription(p["symbol"], p["code"] or None)),
    Fault("set-time", "move the simulated clock to TIME (ISO 8601, UTC unless an offset)",
          (Param("time", str, required=True),), lambda s, p: s.set_time(_when(p["time"]))),
    Fault("fill-while-down", "drop every API connection (refusing new ones for DOWNTIME "
          "seconds), then fill open orders at the current price; clients see the fill only "
          "after reconnecting",
          (Param("order_id", int, None, help="fill only this order id (default: every open "
                 "order)"),
           Param("client_id", int, None, help="fill only this client's orders"),
           Param("downtime", float, 0.0, help="seconds the port stays closed (0: just drop)")),
          lambda s, p: s.fill_while_down(p["order_id"], p["client_id"], p["downtime"])),
    Fault("reset-stats", "forget the request and violation counters", (),
          lambda s, p: s.reset_stats()),
)
FAULTS_BY_NAME = {f.name: f for f in FAULTS}


class ParamError(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def coerce(fault: Fault, body: dict[str, Any]) -> dict[str, Any]:
    """Validate and convert parameters; raises ParamError naming the field."""
    known = {p.name for p in fault.params}
    for key in body:
        if key not in known:
            raise ParamError(key, f"unknown parameter for {fault.name}")
    out: dict[str, Any] = {}
    for p in fault.params:
        if p.name not in body or body[p.name] is None:
            if p.required:
                raise ParamError(p.name, "is required")
            out[p.name] = p.default
            continue
        v = body[p.name]
        try:
            if p.kind is bool:
                b = bool_word(v)
                if b is None:
                    raise TypeError
                out[p.name] = b
            elif p.kind is list:
                if isinstance(v, str):
                    v = [x for x in v.split(",") if x]
                if not isinstance(v, list):
                    raise TypeError
                out[p.name] = v
            else:
                out[p.name] = p.kind(v)
        except (TypeError, ValueError):
            raise ParamError(p.name, f"must be {p.kind.__name__}") from None
        if p.kind in (int, float) and out[p.name] < 0:
            raise ParamError(p.name, "must not be negative")
    return out


def _error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    err: dict[str, Any] = {"code": code, "message": message}
    if field:
        err["field"] = field
    return web.json_response({"error": err}, status=status)


async def handle_state(request: web.Request) -> web.Response:
    # ?orderRef= keeps only the orders and executions that carry it
    return web.json_response(request.app[SIM_KEY].state(request.query.get("orderRef")))


async def handle_fault(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    fault = FAULTS_BY_NAME.get(name)
    if fault is None:
        return _error(404, "not_found", f"unknown fault {name!r}; known: "
                      + ", ".join(FAULTS_BY_NAME))
    body: Any = {}
    if request.can_read_body:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "bad_request", "body is not valid JSON", "body")
    if not isinstance(body, dict):
        return _error(400, "bad_request", "body must be a JSON object", "body")
    try:
        params = coerce(fault, body)
        res = fault.apply(request.app[SIM_KEY], params)
        if hasattr(res, "__await__"):
            await res
    except ParamError as e:
        return _error(400, "bad_request", str(e), e.field)
    except ValueError as e:
        return _error(400, "bad_request", str(e))
    return web.json_response({"ok": True, "fault": name, "params": params})


async def handle_faults(request: web.Request) -> web.Response:
    return web.json_response([
        {"name": f.name, "help": f.help,
         "params": [{"name": p.name, "type": p.kind.__name__, "default": p.default,
                     "required": p.required} for p in f.params]}
        for f in FAULTS
    ])


def init_app(sim: Simulator) -> web.Application:
    app = web.Application()
    app[SIM_KEY] = sim
    app.router.add_get("/state", handle_state)
    app.router.add_get("/faults", handle_faults)
    app.router.add_post("/faults/{name}", handle_fault)
    return app


async def serve_control(sim: Simulator, path: str) -> web.AppRunner:
    """Serve the control app on a Unix socket (stale socket removed, mode 0600)."""
    return await serve_unix(init_app(sim), path)


class ControlError(RuntimeError):
    """Any failure talking to the simulator's control socket."""


class SimControl:
    """Async client for the control socket (tests and ``ibhost sim ctl``)."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=timeout)

    async def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        try:
            conn = aiohttp.UnixConnector(path=self.path)
            async with aiohttp.ClientSession(connector=conn, timeout=self.timeout) as http, \
                    http.request(method, "http://sim" + url, json=body) as resp:
                data = await resp.json()
                if resp.status >= 400:
                    raise ControlError(data.get("error", {}).get("message", str(data)))
                return data
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise ControlError(f"simulator control socket {self.path}: {e}") from e

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/state")
        return result

    async def fault(self, name: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/faults/{name}", params)
        return result
