"""Market-data lines: IB's cap on simultaneous live subscriptions, per user.

Every client of the gateway shares the user's lines (100 unless boosted): each live
reqMktData, reqRealTimeBars and reqTickByTickData takes one, and a request beyond
them gets error 101. Real-time bars "combine the limitations of both top and
historical market data" (TWS API docs, 5 Second Real Time Bars). Tick-by-tick
subscriptions are further capped by the market-depth formula: one per 100 lines,
at least 3, at most 60 (TWS API docs, Tick-by-Tick Data; TWS guide, Market Depth);
beyond that, error 10190.
"""

from __future__ import annotations

from collections.abc import Iterable

from .clientstate import LINE_KINDS, Client

DEFAULT_LINES = 100
TEXT_101 = "Max number of tickers has been reached"
TEXT_10190 = "Max number of tick-by-tick requests has been reached."


def tick_by_tick_max(lines: int) -> int:
    return max(3, min(60, lines // 100))


def used(clients: Iterable[Client], kinds: Iterable[str] = LINE_KINDS) -> int:
    wanted = set(kinds)
    return sum(1 for c in clients for sub in c.st.subs.values() if sub.kind in wanted)


def refuse(clients: Iterable[Client], max_lines: int, s: Client, req_id: int,
           kind: str) -> bool:
    """Send 101 (or 10190) and return True if one more ``kind`` subscription won't fit."""
    clients = list(clients)
    if kind == "tbt" and used(clients, ("tbt",)) >= tick_by_tick_max(max_lines):
        s.error(req_id, 10190, TEXT_10190)
        return True
    if used(clients) >= max_lines:
        s.error(req_id, 101, TEXT_101)
        return True
    return False
