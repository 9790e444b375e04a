"""The parts of ``Simulator.state()`` that describe clients, orders, fills and positions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .session import Session
from .state import Broker


def clients_report(sessions: Iterable[Session]) -> list[dict[str, Any]]:
    return sorted(
        ({"clientId": s.st.client_id, "peer": s.peer, "version": s.st.version,
          "ready": s.st.ready, "subscriptions": len(s.st.subs),
          "openHistorical": len(s.st.open_hist)}
         for s in sessions if s.st.client_id >= 0 and not s.closed),
        key=lambda c: c["clientId"],
    )


def orders_report(b: Broker) -> list[dict[str, Any]]:
    return [
        {"orderId": o.orderId, "clientId": o.clientId, "permId": o.permId,
         "symbol": o.listing.symbol, "localSymbol": o.listing.localSymbol,
         "secType": o.listing.secType, "action": o.action,
         "totalQuantity": o.totalQuantity, "orderType": o.orderType,
         "lmtPrice": o.lmtPrice, "auxPrice": o.auxPrice, "status": o.status,
         "filled": o.filled, "avgFillPrice": o.avgFillPrice, "orderRef": o.orderRef}
        for o in b.orders.values()
    ]


def executions_report(b: Broker) -> list[dict[str, Any]]:
    return [
        {"execId": e.execId, "orderId": e.order.orderId, "clientId": e.order.clientId,
         "symbol": e.order.listing.symbol, "side": e.order.action, "shares": e.shares,
         "price": e.price, "orderRef": e.order.orderRef, "time": e.time.isoformat()}
        for e in b.executions
    ]


def positions_report(b: Broker) -> dict[str, float]:
    return {p.listing.localSymbol: p.position for p in b.positions.values() if p.position}
