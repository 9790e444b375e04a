"""IB's market data as stream events: one dict per quote, tick or bar."""

from __future__ import annotations

from typing import Any

from ..values import _greek, _num, _quote
from .live import LiveSub, iso


def quote_event(sub: LiveSub, t: Any) -> dict[str, Any]:
    c = sub.contract
    ev = {"type": "quote", "key": sub.key, "conId": c.conId, "symbol": c.symbol,
          "localSymbol": c.localSymbol, "bid": _quote(t.bid), "ask": _quote(t.ask),
          "last": _quote(t.last), "bidSize": _num(t.bidSize),
          "askSize": _num(t.askSize), "lastSize": _num(t.lastSize),
          "volume": _num(t.volume), "time": iso(t.time)}
    g = t.modelGreeks
    if g is not None:
        ev["greeks"] = {k: _greek(k, getattr(g, k, None)) for k in (
            "impliedVol", "delta", "gamma", "vega", "theta", "undPrice")}
    return ev


def tick_event(sub: LiveSub, tick: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"type": "tick", "key": sub.key, "conId": sub.contract.conId,
                          "symbol": sub.contract.symbol,
                          "tickType": sub.params["tickType"], "time": iso(tick.time)}
    for f in ("price", "size", "exchange", "bidPrice", "askPrice", "bidSize",
              "askSize", "midPoint"):
        v = getattr(tick, f, None)
        if v is not None:
            ev[f] = v if isinstance(v, str) else _num(v)
    return ev


def rt_bar_event(sub: LiveSub, b: Any) -> dict[str, Any]:
    return {"type": "bar", "key": sub.key, "conId": sub.contract.conId,
            "symbol": sub.contract.symbol, "barSize": "5 secs", "time": iso(b.time),
            "open": b.open_, "high": b.high, "low": b.low, "close": b.close,
            "volume": _num(b.volume), "wap": _num(b.wap), "count": b.count,
            "complete": True}


def bar_event(sub: LiveSub, b: Any, complete: bool) -> dict[str, Any]:
    return {"type": "bar" if complete else "barUpdate", "key": sub.key,
            "conId": sub.contract.conId, "symbol": sub.contract.symbol,
            "barSize": sub.params["barSize"], "time": iso(b.date),
            "open": b.open, "high": b.high, "low": b.low, "close": b.close,
            "volume": _num(b.volume), "complete": complete}
