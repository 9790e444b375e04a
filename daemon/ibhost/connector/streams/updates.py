"""IB's updates in (a part of ``StreamHub``): quotes, tick-by-tick, bars, real-time
bars, P&L, positions and account values, each turned into its event and published
once to every channel."""

from __future__ import annotations

import time
from typing import Any, Protocol

from ..values import _num
from .events import bar_event, quote_event, rt_bar_event, tick_event
from .live import LiveSub


class _Hub(Protocol):
    """What the updates use of the hub they are part of."""

    _by_handle: dict[int, list[LiveSub]]
    updates_in: dict[str, int]

    def _publish(self, ev: dict[str, Any], seq: int = 0) -> None: ...
    def _fresh(self, sub: LiveSub) -> None: ...
    def _emit_bar(self, sub: LiveSub, b: Any) -> None: ...


class UpdatesIn:
    """The hub's handlers of IB's market data and account updates."""

    # --- market data -------------------------------------------------------------------

    def _fresh(self: _Hub, sub: LiveSub) -> None:
        now = time.monotonic()
        if sub.stale is not None:
            self._publish({"type": "status", "key": sub.key, "state": "resumed",
                           "cause": sub.stale,
                           "gapSeconds": round(now - sub.stale_since, 3)})
            sub.stale = None
        sub.last_update = now
        sub.updates += 1

    def _on_tickers(self: _Hub, tickers: Any) -> None:
        for t in tickers:
            for sub in self._by_handle.get(id(t), ()):
                if sub.kind == "quote":
                    self._fresh(sub)
                    self.updates_in["quote"] += 1
                    ev = quote_event(sub, t)
                    sub.last_event = ev
                    self._publish(ev)
                elif t.tickByTicks:
                    self._fresh(sub)
                    for tick in t.tickByTicks:
                        self.updates_in["tick"] += 1
                        ev = tick_event(sub, tick)
                        sub.last_event = ev
                        self._publish(ev)

    def _bars_arrived(self: _Hub, sub: LiveSub, bars: Any) -> None:
        """A (re-)request's history: send the complete bars after the last one sent
        (none the first time: a new stream starts with what comes next)."""
        if len(bars) < 2:
            return
        done = bars[:-1]
        if sub.last_bar is None:
            sub.last_bar = done[-1].date
            sub.last_event = bar_event(sub, done[-1], True)
            return
        for b in done:
            if b.date > sub.last_bar:
                self._emit_bar(sub, b)

    def _emit_bar(self: _Hub, sub: LiveSub, b: Any) -> None:
        ev = bar_event(sub, b, True)
        sub.last_bar = b.date
        sub.last_event = ev
        self.updates_in["bar"] += 1
        self._publish(ev)

    def _on_bar_update(self: _Hub, bars: Any, has_new_bar: bool) -> None:
        subs = self._by_handle.get(id(bars))
        if not subs:
            return
        sub = subs[0]
        self._fresh(sub)
        if sub.kind == "rtbars":
            if bars:
                ev = rt_bar_event(sub, bars[-1])
                sub.last_event = ev
                self.updates_in["bar"] += 1
                self._publish(ev)
            return
        if has_new_bar and len(bars) >= 2:
            for b in bars[:-1][-3:]:  # normally one; more after a pause
                if sub.last_bar is None or b.date > sub.last_bar:
                    self._emit_bar(sub, b)
        if bars:
            self._publish(bar_event(sub, bars[-1], False))

    # --- account: P&L, positions, account values -------------------------------------

    def _on_pnl(self: _Hub, obj: Any) -> None:
        for sub in self._by_handle.get(id(obj), ()):
            self._fresh(sub)
            p = sub.params
            ev: dict[str, Any] = {
                "type": "pnl", "key": sub.key, "account": p["account"],
                "modelCode": p["model"], "dailyPnL": _num(obj.dailyPnL),
                "unrealizedPnL": _num(obj.unrealizedPnL),
                "realizedPnL": _num(obj.realizedPnL)}
            if p["conId"]:
                ev.update(conId=p["conId"], symbol=sub.contract.symbol,
                          position=_num(obj.position), value=_num(obj.value))
            sub.last_event = ev
            self.updates_in["pnl"] = self.updates_in.get("pnl", 0) + 1
            self._publish(ev)

    def _on_position(self: _Hub, pos: Any) -> None:
        c = pos.contract
        self.updates_in["account"] = self.updates_in.get("account", 0) + 1
        self._publish({"type": "position", "key": f"position:{pos.account}:{c.conId}",
                       "account": pos.account, "conId": c.conId, "symbol": c.symbol,
                       "secType": c.secType, "localSymbol": c.localSymbol,
                       "position": _num(pos.position), "avgCost": _num(pos.avgCost)})

    def _on_account_value(self: _Hub, v: Any) -> None:
        self.updates_in["account"] = self.updates_in.get("account", 0) + 1
        self._publish({"type": "accountValue",
                       "key": f"account:{v.account}:{v.tag}:{v.currency}",
                       "account": v.account, "tag": v.tag, "value": v.value,
                       "currency": v.currency or None, "modelCode": v.modelCode or None})
