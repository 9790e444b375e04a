"""Order events (status, execution, commission): journalled with a sequence number
before they are sent; after every connect, reconciled with IB's executions."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ..journal import OrderJournal, order_key
from ..values import _num
from .live import iso

log = logging.getLogger("ibhost.connector.streams")


class _FillOnly:
    """A fill whose order IB no longer lists (another client's, or closed before the
    connection was back): the order fields that the execution itself carries."""

    def __init__(self, fill: Any) -> None:
        e = fill.execution
        self.contract = fill.contract
        self.order = SimpleNamespace(orderId=e.orderId, permId=e.permId,
                                     clientId=e.clientId, orderRef=e.orderRef,
                                     action="BUY" if e.side == "BOT" else "SELL",
                                     totalQuantity=None, orderType=None)
        self.orderStatus = SimpleNamespace(status="Filled" if e.cumQty else "",
                                           permId=e.permId, filled=e.cumQty,
                                           remaining=None, avgFillPrice=e.avgPrice)


class OrderEvents:
    """IB's order, execution and commission events -> journalled stream lines."""

    def __init__(self, ib: Any, journal: OrderJournal, send: Callable[[int, bytes], None],
                 counts: dict[str, int]) -> None:
        self.ib = ib
        self.journal = journal
        self.send = send
        self.counts = counts

    def _order(self, event: str, trade: Any, **extra: Any) -> None:
        o, s, c = trade.order, trade.orderStatus, trade.contract
        ev = {"type": "order", "event": event, "orderId": o.orderId,
              "permId": o.permId or s.permId, "clientId": o.clientId,
              "orderRef": o.orderRef or None, "symbol": c.symbol, "conId": c.conId,
              "secType": c.secType, "localSymbol": c.localSymbol, "action": o.action,
              "quantity": _num(o.totalQuantity), "orderType": o.orderType,
              "status": s.status, "filled": _num(s.filled) or 0.0,
              "remaining": _num(s.remaining), "avgFillPrice": _num(s.avgFillPrice),
              "time": dt.datetime.now(dt.UTC).isoformat(), **extra}
        self.counts["order"] += 1
        seq, line = self.journal.append(ev)
        self.send(seq, line)

    def on_order_status(self, trade: Any) -> None:
        s = trade.orderStatus
        key = order_key({"permId": trade.order.permId or s.permId,
                         "clientId": trade.order.clientId, "orderId": trade.order.orderId})
        now = (s.status, float(s.filled or 0))
        if self.journal.last_status.get(key) == now:
            return
        self._order("status", trade)

    def _fill_fields(self, fill: Any) -> dict[str, Any]:
        e = fill.execution
        return {"execId": e.execId, "side": e.side, "shares": _num(e.shares),
                "price": _num(e.price), "exchange": e.exchange,
                "execTime": iso(e.time), "cumQty": _num(e.cumQty)}

    def on_exec(self, trade: Any, fill: Any, *, reconciled: bool = False) -> None:
        e = fill.execution
        if e.execId in self.journal.exec_seen:
            return
        self._order("execution", trade, **self._fill_fields(fill),
                    **({"reconciled": True} if reconciled else {}))

    def on_commission(self, trade: Any, fill: Any, report: Any, *,
                      reconciled: bool = False) -> None:
        exec_id = fill.execution.execId
        if exec_id not in self.journal.exec_seen:  # a fill learnt at sync: execution first
            self.on_exec(trade, fill, reconciled=True)
        if exec_id in self.journal.commission_seen:
            return
        self._order("commission", trade, execId=exec_id,
                    commission=_num(report.commission), currency=report.currency or None,
                    realizedPNL=_num(report.realizedPNL),
                    **({"reconciled": True} if reconciled else {}))

    def reconcile(self) -> int:
        """Publish, once, every execution (and its commission) and order state IB
        knows that the journal does not: what happened while the connector was away."""
        before = self.journal.seq
        trades = {t.order.permId: t for t in self.ib.trades() if t.order.permId}
        for fill in sorted(self.ib.fills(), key=lambda f: f.time):
            trade = trades.get(fill.execution.permId) or _FillOnly(fill)
            self.on_exec(trade, fill, reconciled=True)
            rep = fill.commissionReport
            if rep is not None and rep.execId:
                self.on_commission(trade, fill, rep, reconciled=True)
        for trade in trades.values():
            self.on_order_status(trade)
        n = self.journal.seq - before
        if n:
            log.info("reconciled with IB: %s order event(s) published", n)
        return n
