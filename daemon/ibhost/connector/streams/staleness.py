"""A stream never goes silent without saying so: ``stale`` when data stops (a lost
connection, 1100, a data farm's 2103/2105, no update while the market is open),
re-requests after every connect, 1101 and a farm's recovery (2104/2106)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from ... import calendars
from ...errors import IbhostError
from ..session import USABLE, State
from .live import LiveSub

log = logging.getLogger("ibhost.connector.streams")

BROKEN_FARMS = {2103: "market_data", 2105: "historical", 2157: "secdef"}
FARM_OK = {2104: "market_data", 2106: "historical", 2158: "secdef"}
_FARM_KINDS = {"market_data": ("quote", "rtbars", "ticks"), "historical": ("bars",)}
_MARKET_KIND = {"STK": "equity", "OPT": "equity", "ETF": "equity", "IND": "equity",
                "FUT": "future", "FOP": "future", "CASH": "fx"}


class _Hub(Protocol):
    """What the stale watch uses of the hub it is part of."""

    subs: dict[str, LiveSub]
    session: Any
    svc: Any
    stale_after: float
    resubscriptions: dict[str, int]
    _broken_farms: set[str]

    def _publish(self, ev: dict[str, Any], seq: int = 0) -> None: ...
    def _spawn(self, coro: Any) -> None: ...
    def _forget_handle(self, sub: LiveSub) -> None: ...
    def _cancel_at_ib(self, sub: LiveSub) -> None: ...
    async def _request(self, sub: LiveSub) -> None: ...
    def reconcile(self) -> int: ...
    def _mark_stale(self, subs: Any, cause: str) -> None: ...
    async def resubscribe(self, cause: str, subs: list[LiveSub] | None = None) -> None: ...
    def _market_open(self, sub: LiveSub) -> bool: ...


class StaleWatch:
    """The hub's stale marks and re-requests (a part of ``StreamHub``)."""

    def _mark_stale(self: _Hub, subs: Any, cause: str) -> None:
        now = time.monotonic()
        for sub in subs:
            if sub.stale is None:
                sub.stale = cause
                sub.stale_since = now
                self._publish({"type": "status", "key": sub.key, "state": "stale",
                               "cause": cause})

    def _on_state(self: _Hub, old: State, new: State, reason: str) -> None:
        if old in USABLE and new not in USABLE:
            self._mark_stale(list(self.subs.values()), "disconnected")

    def _on_code(self: _Hub, code: int) -> None:
        if code == 1100:
            self._mark_stale(list(self.subs.values()), "connectivity_lost")
        elif code in BROKEN_FARMS:
            farm = BROKEN_FARMS[code]
            self._broken_farms.add(farm)
            if farm != "secdef":
                self._mark_stale([s for s in self.subs.values()
                                  if s.kind in _FARM_KINDS[farm]], f"farm_{farm}")
        elif code in FARM_OK and FARM_OK[code] in self._broken_farms:
            farm = FARM_OK[code]
            self._broken_farms.discard(farm)
            if farm != "secdef":
                self._spawn(self.resubscribe(
                    "farm", [s for s in self.subs.values() if s.kind in _FARM_KINDS[farm]]))

    async def _on_connected(self: _Hub) -> None:
        """After every connect (and 1101): re-request every live subscription, then
        reconcile orders and executions with IB."""
        self._broken_farms.clear()
        self.reconcile()
        await self.resubscribe("reconnect")

    async def resubscribe(self: _Hub, cause: str, subs: list[LiveSub] | None = None) -> None:
        targets = list(self.subs.values()) if subs is None else subs
        if not targets:
            return
        if cause != "farm":  # after a farm's recovery a stream that flows is not stale
            self._mark_stale(targets, cause)
        log.info("re-requesting %s live stream(s): %s", len(targets), cause)
        for sub in targets:
            if self.subs.get(sub.key) is not sub:
                continue
            self._forget_handle(sub)
            self._cancel_at_ib(sub)
            sub.resubscribed += 1
            self.resubscriptions[cause] = self.resubscriptions.get(cause, 0) + 1
            try:
                await self._request(sub)
            except IbhostError as e:
                log.warning("re-request of %s failed: %s", sub.key, e)

    async def _watch_stale(self: _Hub) -> None:
        period = max(0.2, min(5.0, self.stale_after / 4))
        while True:
            await asyncio.sleep(period)
            if not self.session.usable:
                continue
            now = time.monotonic()
            silent = [s for s in self.subs.values()
                      if s.stale is None and now - s.last_update > self.stale_after
                      and self._market_open(s)]
            if silent:
                self._spawn(self.resubscribe("silent", silent))

    def _market_open(self: _Hub, sub: LiveSub) -> bool:
        if sub.kind == "pnl":  # P&L moves when it moves: never silent-stale
            return False
        kind = _MARKET_KIND.get(sub.contract.secType)
        if kind is None:
            return True
        t = int(self.svc.now().timestamp())
        try:
            return calendars.is_open(kind, t, bool(sub.params.get("useRTH")))
        except Exception:
            return True
