"""The parts of ``Simulator.state()`` that describe clients, orders, fills and positions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .clientstate import LINE_KINDS
from .lines import tick_by_tick_max, used
from .session import Session
from .state import Broker


def clients_report(sessions: Iterable[Session]) -> list[dict[str, Any]]:
    return sorted(
        ({"clientId": s.st.client_id, "peer": s.peer, "version": s.st.version,
          "ready": s.st.ready, "subscriptions": len(s.st.subs),
          "marketDataLines": used([s]),
          "live": live_report(s),
          "openHistorical": len(s.st.open_hist)}
         for s in sessions if s.st.client_id >= 0 and not s.closed),
        key=lambda c: c["clientId"],
    )


def orders_report(b: Broker, order_ref: str | None = None) -> list[dict[str, Any]]:
    return [
        {"orderId": o.orderId, "clientId": o.clientId, "permId": o.permId,
         "symbol": o.listing.symbol, "localSymbol": o.listing.localSymbol,
         "secType": o.listing.secType, "action": o.action,
         "totalQuantity": o.totalQuantity, "orderType": o.orderType,
         "lmtPrice": o.lmtPrice, "auxPrice": o.auxPrice, "status": o.status,
         "filled": o.filled, "avgFillPrice": o.avgFillPrice, "orderRef": o.orderRef}
        for o in b.orders.values() if order_ref is None or o.orderRef == order_ref
    ]


def executions_report(b: Broker, order_ref: str | None = None) -> list[dict[str, Any]]:
    return [
        {"execId": e.execId, "orderId": e.order.orderId, "clientId": e.order.clientId,
         "symbol": e.order.listing.symbol, "side": e.order.action, "shares": e.shares,
         "price": e.price, "orderRef": e.order.orderRef, "time": e.time.isoformat()}
        for e in b.executions if order_ref is None or e.order.orderRef == order_ref
    ]


def positions_report(b: Broker) -> dict[str, float]:
    return {p.listing.localSymbol: p.position for p in b.positions.values() if p.position}


def live_report(s: Session) -> list[dict[str, Any]]:
    """One client's live subscriptions: kind is mkt (reqMktData), bars (keepUpToDate),
    rtb (reqRealTimeBars) or tbt (reqTickByTickData); ``what`` is whatToShow or the
    tick-by-tick type."""
    return [
        {"reqId": sub.req_id, "kind": sub.kind, "conId": sub.listing.conId,
         "symbol": sub.listing.symbol, "localSymbol": sub.listing.localSymbol,
         "what": sub.what, "line": sub.kind in LINE_KINDS}
        for sub in sorted(s.st.subs.values(), key=lambda x: x.req_id)
    ]


def market_data_report(sessions: Sequence[Session], max_lines: int) -> dict[str, Any]:
    """Lines in use across every client, and live subscriptions counted per
    (conId, kind): ``{"265598": {"mkt": 1}}``."""
    per: dict[str, dict[str, int]] = {}
    for s in sessions:
        for sub in s.st.subs.values():
            kinds = per.setdefault(str(sub.listing.conId), {})
            kinds[sub.kind] = kinds.get(sub.kind, 0) + 1
    return {
        "lines_max": max_lines, "lines_used": used(sessions),
        "tick_by_tick_max": tick_by_tick_max(max_lines),
        "tick_by_tick_used": used(sessions, ("tbt",)),
        "by_contract": per,
    }
