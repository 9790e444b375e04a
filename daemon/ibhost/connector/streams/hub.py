"""The stream hub: channels, holds, the line budget, IB's market data in
(``updates.py``), staleness and re-requests (``staleness.py``); the package's
docstring tells the design."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ...errors import IbhostError, bad_request
from ..asks import STREAM_KINDS as KINDS
from ..contracts import ContractSpec
from ..journal import OrderJournal
from ..values import _num
from .live import LINE_KINDS, POLLED, REST, AccountWide, Channel, LiveSub
from .metrics import StreamCollector
from .orders import OrderEvents
from .requests import cancel_at_ib, request_at_ib, stream_key, stream_params
from .staleness import StaleWatch
from .updates import UpdatesIn

if TYPE_CHECKING:
    from ...config import Config
    from ..service import Service

log = logging.getLogger("ibhost.connector.streams")



class StreamHub(StaleWatch, UpdatesIn):
    def __init__(self, svc: Service, cfg: Config) -> None:
        self.svc = svc
        self.ib = svc.ib
        self.session = svc.session
        s = cfg.streams
        self.linger = s.linger
        self.snapshot_hold = s.snapshot_hold
        self._snapshotted: dict[int, float] = {}  # conId -> when IB last answered one
        self.budget = s.market_data_lines - s.snapshot_lines
        # IB: simultaneous tick-by-tick streams as market depth, 1 per 100 lines, 3..60
        self.tick_cap = max(3, min(60, s.market_data_lines // 100))
        self.stale_after = s.stale_after
        self.channels: dict[str, Channel] = {}
        self.subs: dict[str, LiveSub] = {}
        self._starting: dict[str, asyncio.Future[LiveSub]] = {}
        self._by_handle: dict[int, list[LiveSub]] = {}  # one Ticker may serve two
        self._broken_farms: set[str] = set()
        self.journal = OrderJournal(Path(cfg.path(s.journal_file)), keep=s.journal_keep)
        # counters for /metrics
        self.updates_in: dict[str, int] = {"quote": 0, "bar": 0, "tick": 0, "order": 0,
                                           "pnl": 0, "account": 0}
        self.published = 0
        self.resubscriptions: dict[str, int] = {}
        self.refused = 0
        self.orders = OrderEvents(self.ib, self.journal, self._send, self.updates_in)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watch: asyncio.Task[None] | None = None
        ib = self.ib
        ib.pendingTickersEvent += self._on_tickers
        ib.barUpdateEvent += self._on_bar_update
        ib.orderStatusEvent += self.orders.on_order_status
        ib.execDetailsEvent += self.orders.on_exec
        ib.commissionReportEvent += self.orders.on_commission
        ib.pnlEvent += self._on_pnl
        ib.pnlSingleEvent += self._on_pnl
        ib.positionEvent += self._on_position
        ib.accountValueEvent += self._on_account_value
        self.session.on_resubscribe.append(self._on_connected)
        self.session.on_ib_code.append(self._on_code)
        self.session.listeners.append(self._on_state)
        self.collector = StreamCollector(self)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._watch is None and self.stale_after > 0:
            self._watch = asyncio.get_running_loop().create_task(self._watch_stale())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for t in list(self._tasks):
            t.cancel()
        for ch in self.channels.values():
            ch.closed = "the connector is stopping"
            ch.wake.set()
        self.journal.close()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # --- channels ----------------------------------------------------------------------

    def open_channel(self) -> Channel:
        ch = Channel()
        self.channels[ch.id] = ch
        return ch

    def close_channel(self, ch: Channel) -> None:
        self.channels.pop(ch.id, None)
        for sub in list(self.subs.values()):
            if ch.id in sub.holders:
                self._release(sub, ch.id)

    def hello(self, ch: Channel) -> bytes:
        return orjson.dumps({"type": "hello", "channel": ch.id, "seq": self.journal.seq,
                             "firstSeq": self.journal.first,
                             "lines": self.lines()})

    def _publish(self, ev: dict[str, Any], seq: int = 0) -> None:
        line = orjson.dumps(ev)
        self._send(seq, line)

    def _send(self, seq: int, line: bytes) -> None:
        self.published += 1
        for ch in self.channels.values():
            ch.put(seq, line)
            ch.wake.set()

    # --- holds -------------------------------------------------------------------------

    def lines(self) -> dict[str, Any]:
        used = sum(1 for s in self.subs.values() if s.kind in LINE_KINDS)
        ticks = sum(1 for s in self.subs.values() if s.kind == "ticks")
        return {"used": used, "budget": self.budget, "tickByTick": ticks,
                "tickByTickMax": self.tick_cap}

    async def hold(self, channel: str, kind: str, spec: ContractSpec | None,
                   params: dict[str, Any]) -> dict[str, Any]:
        if channel not in self.channels and channel not in (REST, POLLED):
            raise IbhostError("not_found", f"no stream channel {channel!r} (open GET "
                              f"/stream first)", field="channel")
        if kind not in KINDS:
            raise bad_request("kind", f"must be one of {', '.join(KINDS)}")
        params = stream_params(kind, params, self.svc.account.account)
        if spec is None:  # an account-wide P&L stream
            c: Any = AccountWide()
        else:
            c = await self.svc.resolve(spec)
            if kind == "pnl":
                params["conId"] = c.conId
        key = stream_key(kind, c, params)
        sub = self.subs.get(key)
        if sub is None:
            starting = self._starting.get(key)
            if starting is None:
                fut: asyncio.Future[LiveSub] = asyncio.get_running_loop().create_future()
                self._starting[key] = fut
                try:
                    sub = await self._start(key, kind, c, params)
                    fut.set_result(sub)
                except BaseException as e:
                    fut.set_exception(e)
                    fut.exception()  # retrieved: the waiters re-raise it
                    raise
                finally:
                    self._starting.pop(key, None)
            else:
                sub = await asyncio.shield(starting)
        if channel not in (REST, POLLED) and channel not in self.channels:  # gone meanwhile
            if not sub.holders:
                self._release(sub, channel)
            raise IbhostError("not_found", f"stream channel {channel!r} closed",
                              field="channel")
        sub.holders.add(channel)
        if sub.linger is not None:
            sub.linger.cancel()
            sub.linger = None
        return {**sub.describe(), "last": sub.last_event, "lines": self.lines()}

    async def _start(self, key: str, kind: str, c: Any, params: dict[str, Any]) -> LiveSub:
        if kind in LINE_KINDS:
            lines = self.lines()
            if kind == "ticks" and lines["tickByTick"] >= self.tick_cap:
                self.refused += 1
                raise IbhostError(
                    "line_budget", f"tick-by-tick streams are at IB's limit of "
                    f"{self.tick_cap} (1 per 100 market-data lines, at least 3): "
                    + ", ".join(x.key for x in self.subs.values() if x.kind == "ticks"),
                    extra={"budget": self.tick_cap, "used": lines["tickByTick"],
                           "holders": [x.key for x in self.subs.values()
                                       if x.kind == "ticks"]})
            if lines["used"] >= self.budget and self._drop_lingering():
                lines = self.lines()  # a line that nobody held any more is free again
            if lines["used"] >= self.budget:
                self.refused += 1
                held = sorted(self.subs.values(), key=lambda s: -len(s.holders))
                raise IbhostError(
                    "line_budget",
                    f"market-data line budget reached: {lines['used']} of "
                    f"{self.budget} lines hold live streams (streams.market_data_lines "
                    f"less streams.snapshot_lines); most held: "
                    + ", ".join(f"{s.contract.symbol} ({len(s.holders)})"
                                for s in held[:5]),
                    extra={"budget": self.budget, "used": lines["used"],
                           "holders": [s.key for s in held[:20]]})
        sub = LiveSub(key, kind, c, params)
        await self._request(sub)
        self.subs[key] = sub
        return sub

    async def _request(self, sub: LiveSub) -> None:
        sub.handle = await request_at_ib(self.svc, sub)
        if sub.kind == "bars":
            if sub.stale is not None:  # data again: say so before the seam's bars
                self._fresh(sub)
            self._bars_arrived(sub, sub.handle)
        self._by_handle.setdefault(id(sub.handle), []).append(sub)
        sub.last_update = time.monotonic()
        if sub.kind == "pnl" and (_num(sub.handle.dailyPnL) is not None
                                  or _num(sub.handle.unrealizedPnL) is not None):
            self._on_pnl(sub.handle)  # IB's first answer came before it was known here

    def release(self, channel: str, key: str) -> None:
        sub = self.subs.get(key)
        if sub is None or channel not in sub.holders:
            raise IbhostError("not_found", f"channel {channel!r} holds no stream {key!r}",
                              field="key")
        self._release(sub, channel)

    def _release(self, sub: LiveSub, channel: str, linger: float | None = None) -> None:
        sub.holders.discard(channel)
        if sub.holders or sub.linger is not None:
            return
        loop = asyncio.get_running_loop()
        linger = self.linger if linger is None else linger
        if linger <= 0:
            self._cancel(sub)
        else:
            sub.linger = loop.call_later(linger, self._cancel, sub)

    def _drop_lingering(self) -> bool:
        """Cancel the oldest line-holding stream nobody holds any more (lingering, or
        kept for polled snapshots): a stream someone asks for comes first."""
        idle = [x for x in self.subs.values() if x.kind in LINE_KINDS and not x.holders]
        if not idle:
            return False
        oldest = min(idle, key=lambda x: x.last_update)
        if oldest.linger is not None:
            oldest.linger.cancel()
        oldest.linger = None
        self._cancel(oldest)
        return True

    def snapshot_asked(self, spec: ContractSpec, con_id: int, generic: list[int]) -> None:
        """IB answered a (live) snapshot of ``con_id``: the second within
        ``streams.snapshot_hold`` seconds keeps its quote streaming until that long
        after the last one, so the next snapshots are answered from it (one line and
        two messages for a polled contract, not a message per poll; a contract asked
        once costs nothing more). Never at the cost of a stream someone holds."""
        if self.snapshot_hold <= 0:
            return
        now = time.monotonic()
        last = self._snapshotted.get(con_id)
        self._snapshotted[con_id] = now
        if len(self._snapshotted) > 10000:
            self._snapshotted = {k: t for k, t in self._snapshotted.items()
                                 if now - t < self.snapshot_hold}
        if last is None or now - last >= self.snapshot_hold:
            return
        if self.lines()["used"] >= self.budget:
            return  # every line is in use: polls keep asking IB

        async def keep() -> None:  # no line, or the connection went: polls ask IB
            with contextlib.suppress(IbhostError, ConnectionError, TimeoutError):
                held = await self.hold(POLLED, "quote", spec, {"generic": generic})
                sub = self.subs.get(held["key"])
                if sub is not None:
                    self._release(sub, POLLED, self.snapshot_hold)
        self._spawn(keep())

    def snapshot_answered(self, sub: LiveSub) -> None:
        """A snapshot answered from ``sub``: if nobody holds it any more (it lingers,
        or is kept for polls), it stays ``streams.snapshot_hold`` seconds from now."""
        if sub.holders or sub.linger is None or self.snapshot_hold <= 0:
            return
        sub.linger.cancel()
        sub.linger = None
        self._release(sub, POLLED, self.snapshot_hold)

    def _cancel(self, sub: LiveSub) -> None:
        sub.linger = None
        if sub.holders or self.subs.get(sub.key) is not sub:
            return
        del self.subs[sub.key]
        self._forget_handle(sub)
        self._cancel_at_ib(sub)
        log.info("stream %s cancelled at IB (no consumer left)", sub.key)

    def _forget_handle(self, sub: LiveSub) -> None:
        subs = self._by_handle.get(id(sub.handle))
        if subs is not None:
            if sub in subs:
                subs.remove(sub)
            if not subs:
                del self._by_handle[id(sub.handle)]

    def _cancel_at_ib(self, sub: LiveSub) -> None:
        if self.session.usable:
            cancel_at_ib(self.ib, sub)

    def describe(self) -> list[dict[str, Any]]:
        return [s.describe() for s in self.subs.values()]

    # --- answered from held streams ----------------------------------------------------

    def held_quote(self, con_id: int, generic: list[int]) -> LiveSub | None:
        """A live quote subscription of ``con_id`` that carries every generic tick
        asked for and is not stale (so a snapshot need not ask IB again)."""
        want = set(generic)
        for sub in self.subs.values():
            if sub.kind == "quote" and sub.contract.conId == con_id and sub.updates \
                    and sub.stale is None and sub.handle is not None and want <= {
                        int(g) for g in sub.params["generic"].split(",") if g}:
                return sub
        return None

    def held_pnl(self, account: str, model: str, con_id: int) -> dict[str, Any] | None:
        """The newest P&L of a held P&L stream (so /pnl need not ask IB again)."""
        sub = self.subs.get(f"pnl:{account}:{model}:{con_id}")
        return None if sub is None else sub.last_event

    # --- orders ------------------------------------------------------------------------

    def reconcile(self) -> int:
        return self.orders.reconcile()

    def journal_since(self, seq: int) -> Iterator[tuple[int, bytes]]:
        return self.journal.since(seq)
