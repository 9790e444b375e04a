"""The simulator: a TCP server speaking the TWS API, its shared state, and its faults.

Use it in-process (``async with Simulator(port=0) as sim``) or as ``ibhost sim``.
Every fault is a method here; the control socket and ``ibhost sim ctl`` call them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from .clientstate import LINE_KINDS
from .feeds import run as run_feeds
from .handlers import HANDLERS
from .hours import warm_up
from .lines import DEFAULT_LINES
from .market import Market
from .notices import FARMS, TEXT_1100, TEXT_1101, TEXT_1102, TEXT_1300, TEXT_2110, TEXT_10197
from .orders import fill_now
from .pacing import HistoricalPacer, SoftThrottle
from .report import (
    clients_report,
    executions_report,
    market_data_report,
    orders_report,
    positions_report,
)
from .session import Session
from .state import Broker
from .stats import Stats
from .universe import Universe

log = logging.getLogger("ibhost.sim")


class Simulator:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4002,
        *,
        seed: int = 0,
        pacing_scale: float = 1.0,
        account: str = "DU1234567",
        max_clients: int = 32,
        tick_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        start_time: dt.datetime | None = None,
        pacing: str = "ib",
        max_lines: int = DEFAULT_LINES,
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.clock = clock
        # The simulated wall clock: real time, or real time shifted so that the
        # simulation starts at ``start_time`` (a weekday session on a weekend).
        self._offset = 0.0 if start_time is None else start_time.timestamp() - time.time()
        self.tz = ZoneInfo("US/Eastern")
        self.max_clients = max_clients
        self.tick_interval = tick_interval
        self.bar_update_interval = 5.0  # keepUpToDate bars, like IB's ~5 s updates
        self.pacing_scale = pacing_scale
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        self.max_lines = max_lines  # the user's market-data lines, for every client
        self.universe = Universe(self.now)
        self.market = Market(self.universe, seed)
        self.broker = Broker(account=account)
        self.pacer = HistoricalPacer(pacing_scale, clock)
        # "ib": hard rules for bars <= 30 s and head timestamps, a soft throttle and
        # the 50-open cap above; "strict": the hard rules for every bar size
        if pacing not in ("ib", "strict"):
            raise ValueError("pacing must be 'ib' or 'strict'")
        self.pacing_mode = pacing
        self.throttle = SoftThrottle(pacing_scale, clock=clock)
        self.stats = Stats()
        self.sessions: set[Session] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._thawed = asyncio.Event()
        self._thawed.set()
        # fault state
        self.ready_delay = 0.0
        self.slow_ms = 0.0
        self.connectivity = "ok"  # ok | lost
        self.farms: dict[str, bool] = {"usfarm": True, "ushmds": True, "secdefil": True}
        self.competing_session = False
        self.forced_pacing = 0
        self.no_subscription: dict[str, int] = {}

    def now(self) -> float:
        """Simulated wall-clock time, epoch seconds."""
        return time.time() + self._offset

    def now_dt(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now(), dt.UTC)

    def set_time(self, when: dt.datetime) -> None:
        """Move the simulated clock to ``when``; it keeps running from there."""
        self._offset = when.timestamp() - time.time()

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> Simulator:
        # the day's listings (10,000 options) built before the first client, not while
        # its requests wait: their arrival times are what the pacing rules judge
        self.universe.all()
        await self._listen()
        self._spawn(run_feeds(self))
        threading.Thread(target=warm_up, name="calendar-warmup", daemon=True).start()
        log.info("simulator listening on %s:%s", self.host, self.port)
        return self

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._new_session, self.host, self.port, reuse_address=True
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    def _new_session(self) -> Session:
        self.stats.connections_total += 1
        return Session(self, HANDLERS)

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await self._unlisten()
        self.drop()
        self._thawed.set()
        await asyncio.sleep(0)

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def listening(self) -> bool:
        return self._server is not None

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _later(self, delay: float, fn: Callable[[], Any]) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            res = fn()
            if asyncio.iscoroutine(res):
                await res

        self._spawn(run())

    # --- helpers for sessions ----------------------------------------------------------

    @property
    def frozen(self) -> bool:
        return not self._thawed.is_set()

    async def unfrozen(self) -> None:
        await self._thawed.wait()

    def ready_sessions(self) -> list[Session]:
        return [s for s in self.sessions if s.st.ready and not s.closed]

    def farm_notices(self) -> list[tuple[int, str]]:
        out = []
        for _code, (farm, broken, ok_code, ok_text) in FARMS.items():
            if self.farms[farm]:
                out.append((ok_code, ok_text))
            else:
                out.append((_code, broken))
        return out

    def broadcast_error(self, code: int, text: str) -> None:
        for s in self.ready_sessions():
            s.error(-1, code, text)

    # --- faults --------------------------------------------------------------------------

    def drop(self) -> int:
        """Close every client connection (the gateway process died or the network blipped)."""
        n = 0
        for s in list(self.sessions):
            s.close()
            n += 1
        self.sessions.clear()
        return n

    def freeze(self) -> None:
        """Keep sockets open but never answer (a laptop with its lid closed)."""
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    async def close_port(self, seconds: float) -> None:
        """Stop listening and drop clients; listen again after ``seconds``."""
        await self._unlisten()
        self.drop()
        self._later(seconds, self._relisten)

    async def reopen_port(self) -> None:
        """Listen again now (ends a ``close_port`` early)."""
        await self._relisten()

    async def _relisten(self) -> None:
        if self._server is None:
            await self._listen()
            log.info("listening again on port %s", self.port)

    async def restart(self, downtime: float = 0.0) -> None:
        """A gateway restart: connections gone, every order, fill and id forgotten."""
        await self._unlisten()
        self.drop()
        self.broker = Broker(account=self.broker.account)
        self.pacer.reset()
        self.throttle.reset()
        self.connectivity = "ok"
        self.farms = dict.fromkeys(self.farms, True)
        self.stats.restarts += 1
        if downtime > 0:
            self._later(downtime, self._relisten)
        else:
            await self._listen()

    async def fill_while_down(self, order_id: int | None = None,
                              client_id: int | None = None, downtime: float = 0.0) -> int:
        """Drop every API connection (refusing new ones for ``downtime`` seconds), then
        fill the open orders chosen (all, one client's, or one order id) at the current
        price, or at its limit if the market is not there: the fill a client finds only
        after it reconnects, in reqCompletedOrders, reqExecutions (with its commission
        report) and reqPositions, once. Returns how many orders filled."""
        orders = [o for o in self.broker.open_orders(client_id)
                  if order_id is None or o.orderId == order_id]
        if not orders:
            raise ValueError("no open order matches")
        if downtime > 0:
            await self.close_port(downtime)
        else:
            self.drop()
        for order in orders:
            fill_now(self, order)
        return len(orders)

    def delay_ready(self, seconds: float) -> None:
        """Hold managedAccounts/nextValidId back for ``seconds`` on new connections."""
        self.ready_delay = max(0.0, seconds)

    def connectivity_lost(self, restore: str | None = "1102", after: float | None = 5.0) -> None:
        """Send 1100 now and, after ``after`` seconds, 1101 (data lost) or 1102 (maintained)."""
        self.connectivity = "lost"
        self.broadcast_error(1100, TEXT_1100)
        if restore and after is not None:
            self._later(after, lambda: self.connectivity_restored(restore))

    def connectivity_restored(self, code: str = "1102") -> None:
        self.connectivity = "ok"
        if code == "1101":
            for s in self.ready_sessions():
                for rid in [k for k, v in s.st.subs.items() if v.kind in LINE_KINDS]:
                    del s.st.subs[rid]
            self.broadcast_error(1101, TEXT_1101)
        else:
            self.broadcast_error(1102, TEXT_1102)

    def farm_broken(self, code: int, after: float | None = 5.0) -> None:
        """2103 / 2105 / 2157 now, the matching OK notice after ``after`` seconds; or 2110."""
        if code == 2110:
            self.broadcast_error(2110, TEXT_2110)
            for farm in self.farms:
                self.farms[farm] = False
            if after is not None:
                self._later(after, self._all_farms_ok)
            return
        if code not in FARMS:
            raise ValueError(f"unknown farm code {code}; use 2103, 2105, 2157 or 2110")
        farm, text, _ok_code, _ok_text = FARMS[code]
        self.farms[farm] = False
        self.broadcast_error(code, text)
        if after is not None:
            self._later(after, lambda: self.farm_ok(code))

    def farm_ok(self, code: int) -> None:
        farm, _t, ok_code, ok_text = FARMS[code]
        self.farms[farm] = True
        self.broadcast_error(ok_code, ok_text)

    def _all_farms_ok(self) -> None:
        for code in FARMS:
            self.farm_ok(code)

    def set_competing_session(self, on: bool = True) -> None:
        """10197 on every market-data request (the user logged in elsewhere)."""
        self.competing_session = on
        if on:
            for s in self.ready_sessions():
                for rid, sub in list(s.st.subs.items()):
                    if sub.kind in LINE_KINDS:
                        s.error(rid, 10197, TEXT_10197)

    def port_reset(self) -> None:
        """Error 1300, then every connection is dropped."""
        self.broadcast_error(1300, TEXT_1300.format(port=self.port))
        self._later(0.05, self.drop)

    def force_pacing(self, count: int) -> None:
        """The next ``count`` historical requests fail with a pacing 162."""
        self.forced_pacing = max(0, count)

    def slow(self, ms: float) -> None:
        """Delay every reply by ``ms`` milliseconds."""
        self.slow_ms = max(0.0, ms)

    def set_missing(self, symbol: str, ranges: list[tuple[dt.datetime, dt.datetime]]) -> None:
        """No bars start inside these UTC ranges for ``symbol`` (to create gaps)."""
        self.market.missing[symbol.upper()] = [
            (int(a.timestamp()), int(b.timestamp())) for a, b in ranges
        ]

    def set_no_subscription(self, symbol: str, code: int | None = 354) -> None:
        """Market data for ``symbol`` needs a subscription: 354 or 10089 (None clears)."""
        if code is None:
            self.no_subscription.pop(symbol.upper(), None)
        elif code in (354, 10089):
            self.no_subscription[symbol.upper()] = code
        else:
            raise ValueError("code must be 354 or 10089")

    # --- report --------------------------------------------------------------------------

    def state(self, order_ref: str | None = None) -> dict[str, Any]:
        """Everything the simulator holds; with ``order_ref``, only the orders and
        executions that carry it (a long run holds many)."""
        b = self.broker
        return {
            "listening": self.listening,
            "host": self.host,
            "port": self.port,
            "seed": self.seed,
            "time": self.now_dt().isoformat(),
            "pacing_scale": self.pacing_scale,
            "pacing": self.pacing_mode,
            "frozen": self.frozen,
            "connectivity": self.connectivity,
            "farms": dict(self.farms),
            "ready_delay": self.ready_delay,
            "slow_ms": self.slow_ms,
            "competing_session": self.competing_session,
            "forced_pacing_left": self.forced_pacing,
            "no_subscription": dict(self.no_subscription),
            "market_data": market_data_report(self.ready_sessions(), self.max_lines),
            "clients": clients_report(self.sessions),
            "account": b.account,
            "orders": orders_report(b, order_ref),
            "executions": executions_report(b, order_ref),
            "positions": positions_report(b),
            "cash": round(b.cash, 2),
            "stats": self.stats.as_dict(),
        }

    def reset_stats(self) -> None:
        self.stats = Stats()
