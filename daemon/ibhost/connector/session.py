"""The one IB session: connect, synchronise, watch, reconnect.

States (diagnostics.py): down -> connecting -> synchronizing -> ready <-> degraded
-> down. Ready only after the handshake, nextValidId, managedAccounts and the library's
initial sync completed, plus a settle delay. Each transition is logged once with
its cause and kept in the diagnostics served by /status. The heartbeat watches a
connection in use (heartbeat.py), the backoff spaces failed connects (backoff.py),
and IB's codes mark the connection degraded or not (ibcodes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..errors import IbhostError
from ..proc import cancel_and_wait
from ..windows import Schedule, Window
from . import ibcodes
from .backend import Backend
from .backoff import Backoff
from .clock import IbClock

# the states, re-exported: ``session.State``, ``session.USABLE`` ... as before
from .diagnostics import USABLE as USABLE
from .diagnostics import Diagnostics as Diagnostics
from .diagnostics import State as State
from .heartbeat import Heartbeat

log = logging.getLogger("ibhost.connector.session")


class Session:
    def __init__(
        self,
        cfg: Config,
        backend: Backend,
        *,
        wall: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.cfg = cfg
        self.ibcfg = cfg.ib
        w = cfg.watchdog
        self.schedule = Schedule(w.region, w.maintenance, w.maintenance_tz)
        self.backend = backend
        self.wall = wall
        self.rng = rng
        self.ib = backend.new_ib()
        self.diag = Diagnostics(since=wall())
        self._next_id = self.ibcfg.client_id_start
        self._stopping = False
        self._wake = asyncio.Event()  # reconnect requested or stopping
        self._clashed = asyncio.Event()  # a 326 arrived during this connect
        self._reconnect_reason: str | None = None
        self._disconnected = asyncio.Event()
        self._clash = False
        self._degraded: set[str] = set()
        self.listeners: list[Callable[[State, State, str], None]] = []
        self.on_ib_code: list[Callable[[int], None]] = []
        self.on_resubscribe: list[Callable[[], Any]] = []
        self.heartbeat = Heartbeat(self.ib, self.ibcfg, self.diag, wall=wall,
                                   outstanding=self.outstanding,
                                   reconnect=self.request_reconnect)
        self.backoff = Backoff(self.ibcfg, self.diag, wall=wall, rng=rng, wake=self._wake,
                               cut_short=lambda: self._stopping or bool(self._reconnect_reason))
        self.ib.errorEvent += self._on_error
        self.ib.disconnectedEvent += self._on_disconnected
        self.ib.client.apiStart += self._on_api_start
        self.ib.client.conn.hasData += self.heartbeat.on_data
        # IB's own clock, from every currentTime answer (the heartbeat's included)
        self.clock = IbClock(wall)
        answered = self.ib.wrapper.currentTime

        def current_time(epoch: int) -> None:
            self.clock.observe(epoch)
            self.diag.ibClockOffsetSeconds = round(self.clock.offset, 3)
            answered(epoch)

        self.ib.wrapper.currentTime = current_time
        self.in_flight = 0  # requests of ours waiting on IB (besides the library's)
        # fails (with the reason) when the connection in use is lost, so requests in
        # flight end at once instead of waiting out their timeout
        self.lost: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    # --- public ------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return State(self.diag.state)

    @property
    def usable(self) -> bool:
        return self.state in USABLE

    def require_ready(self) -> None:
        if not self.usable:
            m = self.maintenance()
            if m is not None:
                w, until = m
                raise IbhostError(
                    "maintenance", f"IB's scheduled maintenance '{w.text}' "
                    f"({self.schedule.tz.key}) until {until:%Y-%m-%d %H:%M} UTC: the "
                    f"connection is {self.state.value}; try again then",
                    extra={"state": self.state.value, "window": w.text,
                           "until": until.isoformat()})
            raise IbhostError("unavailable", f"IB connection is {self.state.value}: "
                              f"{self.diag.stateReason}",
                              extra={"state": self.state.value})

    def maintenance(self) -> tuple[Window, dt.datetime] | None:
        """The maintenance window IB's clock is in, and when it ends (UTC)."""
        now = self.clock.now_dt()
        w = self.schedule.active(now)
        return None if w is None else (w, self.schedule.ends(now, w))

    def hold_orders(self) -> None:
        """Refuse a new order within ``trading.restart_margin`` of IB Gateway's daily
        auto-restart (``ib.auto_restart``): one sent as it restarts can be lost."""
        at = self.ibcfg.auto_restart
        if not at:
            return
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(self.ibcfg.auto_restart_tz) if self.ibcfg.auto_restart_tz else None
        now = self.clock.now_dt().astimezone(tz)
        margin = dt.timedelta(seconds=self.cfg.trading.restart_margin)
        hh, mm = (int(x) for x in at.split(":"))
        for days in (-1, 0, 1):
            t = (now + dt.timedelta(days=days)).replace(hour=hh, minute=mm, second=0,
                                                        microsecond=0)
            if t - margin <= now <= t + margin:
                raise IbhostError(
                    "maintenance", f"orders are held from {t - margin:%H:%M:%S} to "
                    f"{t + margin:%H:%M:%S} ({now.tzname()}) around IB Gateway's daily "
                    f"auto-restart at {at} (ib.auto_restart, trading.restart_margin): an "
                    "order sent now could be lost; send it after",
                    extra={"until": (t + margin).astimezone(dt.UTC).isoformat()})

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ib-session")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        await cancel_and_wait(self._task)
        if self.ib.isConnected():
            self.ib.disconnect()
        self._set_state(State.DOWN, "stopped")
        self._lose("connector stopping")

    def request_reconnect(self, reason: str) -> None:
        """Drop the connection (if any) and connect again now, skipping any backoff."""
        log.info("reconnect requested: %s", reason)
        self._reconnect_reason = reason
        self._wake.set()

    async def wait_state(self, *states: State, timeout: float = 10.0) -> State:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.state not in states:
            if loop.time() > end:
                raise TimeoutError(f"state is {self.state.value}, wanted "
                                   f"{', '.join(s.value for s in states)}")
            await asyncio.sleep(0.02)
        return self.state

    # --- state -------------------------------------------------------------------------

    def _set_state(self, new: State, reason: str) -> None:
        old = self.state
        if new == old and reason == self.diag.stateReason:
            return
        self.diag.state = new.value
        self.diag.stateReason = reason
        if new != old:
            self.diag.since = self.wall()
            log.info("state %s -> %s: %s", old.value, new.value, reason)
            for fn in self.listeners:
                fn(old, new, reason)

    def _refresh_usable_state(self) -> None:
        if self.state not in USABLE:
            return
        self.diag.degradedReasons = sorted(self._degraded)
        if self._degraded:
            self._set_state(State.DEGRADED, ", ".join(sorted(self._degraded)))
        else:
            self._set_state(State.READY, "connected and synchronized")

    # --- main loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            ok, port_closed = await self._attempt()
            if self._stopping:
                return
            if ok:
                failures = 0
                reason = await self._serve()
                self._drop(reason)
                continue
            delay = self.backoff.delay(failures)
            failures += 1
            await self.backoff.wait(delay, port_closed)

    def _advance_client_id(self) -> None:
        """Only a clash (326) moves to the next id: orders belong to the id that placed
        them, so a reconnect keeps the id it had."""
        cid = self._next_id
        self._next_id = cid + 1 if cid < self.ibcfg.client_id_max else self.ibcfg.client_id_start

    async def _attempt(self) -> tuple[bool, bool]:
        """Try up to ``ids_per_attempt`` client ids. Returns (ready, port_was_closed)."""
        self._reconnect_reason = None
        self._wake.clear()
        for i in range(self.ibcfg.ids_per_attempt):
            cid = self._next_id
            self.diag.reconnectAttempts += 1
            self.diag.lastReconnectAttemptAt = self.wall()
            self.diag.nextAttemptAt = None
            self._clash = False
            self._degraded.clear()
            self._set_state(State.CONNECTING, f"connecting to {self.ibcfg.host}:"
                            f"{self.ibcfg.port} as client {cid}")
            try:
                await self._connect(cid)
            except Exception as e:
                with contextlib.suppress(Exception):
                    self.ib.disconnect()
                if self._clash:
                    self._advance_client_id()
                    self.diag.clientIdClashes += 1
                    self.diag.lastReconnectError = f"client id {cid} in use (326)"
                    log.warning("client id %s in use (326), trying the next", cid)
                    if i + 1 < self.ibcfg.ids_per_attempt:
                        await asyncio.sleep(self.ibcfg.client_id_retry_delay
                                            * (1 + 0.3 * self.rng()))
                        continue
                    self.diag.reconnectFailures += 1
                    self._set_state(State.DOWN, f"client ids clash (326) x{i + 1}")
                    return False, False
                closed = isinstance(e, ConnectionRefusedError | ConnectionResetError) or (
                    isinstance(e, OSError) and not isinstance(e, TimeoutError))
                what = type(e).__name__ + (f": {e}" if str(e) else "")
                self.diag.reconnectFailures += 1
                self.diag.lastReconnectError = what
                self._set_state(State.DOWN, f"connect failed: {what}")
                return False, closed
            await asyncio.sleep(self.ibcfg.settle_delay)
            with contextlib.suppress(Exception):  # IB's clock, before a request uses it
                async with asyncio.timeout(self.ibcfg.settle_delay + 1):
                    await self.ib.reqCurrentTimeAsync()
            if not self.ib.isConnected():
                self.diag.reconnectFailures += 1
                self.diag.lastReconnectError = "connection lost while settling"
                self._set_state(State.DOWN, "connection lost while settling")
                return False, False
            self.diag.clientId = cid
            self.lost = asyncio.get_running_loop().create_future()
            self.diag.serverVersion = self.ib.client.serverVersion()
            self.diag.accounts = list(self.ib.managedAccounts())
            self.diag.connectedSince = self.wall()
            self.diag.lastReconnectError = None
            self._set_state(State.DEGRADED if self._degraded else State.READY,
                            "connected and synchronized" if not self._degraded
                            else ", ".join(sorted(self._degraded)))
            # reconnect after a drop: held subscriptions are re-requested
            for fn in self.on_resubscribe:
                res = fn()
                if asyncio.iscoroutine(res):
                    await res
            return True, False
        return False, False

    async def _connect(self, cid: int) -> None:
        """Connect and sync; a 326 (client id in use) ends the attempt at once instead
        of waiting out the connect timeout (IB closes the socket after it anyway)."""
        self._disconnected.clear()
        self._clashed.clear()
        kwargs = self.backend.connect_kwargs(self.ib)
        connect = asyncio.ensure_future(asyncio.wait_for(
            self.ib.connectAsync(self.ibcfg.host, self.ibcfg.port, clientId=cid,
                                 timeout=self.ibcfg.connect_timeout,
                                 account=self.ibcfg.account, **kwargs),
            self.ibcfg.connect_timeout * 3,
        ))
        clash = asyncio.ensure_future(self._clashed.wait())
        try:
            await asyncio.wait({connect, clash}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            clash.cancel()
        if not connect.done():
            connect.cancel()
            with contextlib.suppress(BaseException):
                await connect
            raise ConnectionError(f"client id {cid} is in use (326)")
        await connect

    async def _serve(self) -> str:
        """Hold the connection until it drops or a reconnect is asked for."""
        hb = asyncio.get_running_loop().create_task(self.heartbeat.run(),
                                                    name="ib-heartbeat")
        waits = [asyncio.ensure_future(self._disconnected.wait()),
                 asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hb.cancel()
            for w in waits:
                w.cancel()
        if self._stopping:
            return "stopping"
        if self._reconnect_reason:
            return self._reconnect_reason
        return "connection closed by the gateway"

    def _drop(self, reason: str) -> None:
        self.diag.lastDisconnectAt = self.wall()
        self.diag.lastDisconnectReason = reason
        self.diag.connectedSince = None
        if self.ib.isConnected():
            self.ib.disconnect()
        self._set_state(State.DOWN, reason)
        self._lose(reason)

    def _lose(self, reason: str) -> None:
        """End every request waiting on the lost connection. The library only fails
        its own pending requests when the peer closes; after our own disconnect
        they would wait out their timeout."""
        lost, self.lost = self.lost, None
        if lost is not None and not lost.done():
            lost.set_exception(ConnectionError(reason))
            lost.exception()  # retrieved: waiters re-raise it

    def outstanding(self) -> bool:
        """Is anything waiting on an answer from IB?"""
        return self.in_flight > 0 or bool(getattr(self.ib.wrapper, "_futures", None))

    # --- events from the library ----------------------------------------------------

    def _on_api_start(self) -> None:
        self._set_state(State.SYNCHRONIZING, "handshake done; synchronizing positions, "
                                             "orders, account and executions")

    def _on_disconnected(self) -> None:
        self._disconnected.set()

    def _on_error(self, req_id: int, code: int, message: str, *_: Any) -> None:
        d = self.diag
        d.ibCodes[code] += 1
        d.lastIbErrorAt = self.wall()
        d.lastIbErrorCode = code
        d.lastIbErrorMessage = message
        for hook in self.on_ib_code:
            hook(code)
        ibcodes.note(code, self._degraded, d, self.wall)  # degraded reasons, farms
        if code == 326:
            self._clash = True
            self._clashed.set()
        elif code == 1101:
            log.warning("1101: connectivity restored, data lost; re-requesting "
                        "subscriptions")
            for fn in self.on_resubscribe:
                res = fn()
                if asyncio.iscoroutine(res):
                    asyncio.get_running_loop().create_task(res)
        elif code == 1300:
            self.request_reconnect("1300: gateway socket port reset")
        elif code == 321 and req_id in getattr(self.ib.wrapper, "_futures", {}):
            # ib_async only logs 321 on a pending request; end it with the error so
            # the caller gets "bad request" rather than a timeout.
            err = self.backend.lib.RequestError(req_id, code, message)
            self.ib.wrapper._endReq(req_id, err, success=False)
        self._refresh_usable_state()
