"""A stream kind's side at IB: its parameters and key, its request and its cancel."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ... import ibrules
from ...errors import bad_request
from ..asks import TICK_TYPES
from ..pacing import PaceKey
from .live import LiveSub

if TYPE_CHECKING:
    from ..service import Service

log = logging.getLogger("ibhost.connector.streams")


def _duration(bar: int) -> str:
    """History asked with a live-updating bar request: 200 bars, enough to close the
    seam after a long outage."""
    seconds = bar * 200
    if seconds <= 86400:
        return f"{max(seconds, 1800)} S"
    return f"{min(365, -(-seconds // 86400))} D"


def stream_key(kind: str, c: Any, params: dict[str, Any]) -> str:
    if kind == "quote":
        return f"quote:{c.conId}:{params['generic']}"
    if kind == "rtbars":
        return f"rtbars:{c.conId}:{params['whatToShow']}:{int(params['useRTH'])}"
    if kind == "ticks":
        return f"ticks:{c.conId}:{params['tickType']}"
    if kind == "pnl":
        return f"pnl:{params['account']}:{params['model']}:{params['conId']}"
    return (f"bars:{c.conId}:{params['barSize']}:{params['whatToShow']}:"
            f"{int(params['useRTH'])}")


def stream_params(kind: str, p: dict[str, Any], account: Callable[[str], str]
                  ) -> dict[str, Any]:
    """A stream's parameters, checked; ``account`` resolves the P&L account asked for."""
    if kind == "quote":
        return {"generic": ",".join(str(g) for g in p.get("generic") or ())}
    if kind == "pnl":
        con_id = int(p.get("conId") or 0)
        return {"account": account(str(p.get("account") or "")),
                "model": str(p.get("model") or ""), "conId": con_id}
    if kind == "ticks":
        tick_type = str(p.get("tickType") or "Last")
        if tick_type not in TICK_TYPES:
            raise bad_request("tickType", f"must be one of {', '.join(TICK_TYPES)}")
        return {"tickType": tick_type}
    if kind == "rtbars":
        bar_size = "5 secs"  # IB's real-time bars come in one size
    else:
        bar_size = str(p.get("barSize") or "1 min")
        bar = ibrules.bar_seconds(bar_size)
        if bar is None or bar < 60:
            raise bad_request("barSize", "live-updating bars are 1 min or larger "
                              "(IB's keepUpToDate), e.g. '1 min', '5 mins', '1 hour'")
    what = str(p.get("whatToShow") or "TRADES").upper()
    if what not in ("TRADES", "MIDPOINT", "BID", "ASK"):
        raise bad_request("whatToShow", "must be TRADES, MIDPOINT, BID or ASK")
    return {"barSize": bar_size, "whatToShow": what, "useRTH": bool(p.get("useRTH"))}


async def request_at_ib(svc: Service, sub: LiveSub) -> Any:
    """Ask IB for ``sub``'s data, paced as its kind is; its handle (the ib_async
    Ticker, BarDataList, RealTimeBarList or PnL)."""
    ib, c, p = svc.ib, sub.contract, sub.params
    if sub.kind == "quote":
        async def go() -> Any:
            svc.market_data_type(1)  # live, whatever a snapshot asked for before
            return ib.reqMktData(c, p["generic"], False, False)

        return await svc._call(f"stream quote {c.symbol}", go,
                               messages=1 + svc.type_switch(1))
    if sub.kind == "ticks":
        async def ticks() -> Any:
            return ib.reqTickByTickData(c, p["tickType"], 0, False)

        return await svc._call(f"stream ticks {c.symbol}", ticks)
    if sub.kind == "pnl":
        acct, model, con_id = p["account"], p["model"], p["conId"]

        async def pnl() -> Any:
            return (ib.reqPnLSingle(acct, model, con_id) if con_id
                    else ib.reqPnL(acct, model))

        # one subscription per account and model at IB: /pnl's one-off asks take
        # the same lock, and answer from this one while it is held
        async with svc.account._pnl_lock:
            return await svc._call(f"stream pnl {acct}", pnl)
    if sub.kind == "rtbars":
        # IB counts real-time bars as small bars: its hard pacing rules apply
        key = PaceKey(("stream-rtbars", sub.key, time.monotonic()),
                      (c.conId, c.exchange, p["whatToShow"]), 1, hard=True)

        async def rtbars() -> Any:
            return ib.reqRealTimeBars(c, 5, p["whatToShow"], p["useRTH"])

        return await svc._call(f"stream real-time bars {c.symbol}", rtbars, key=key)
    bar = ibrules.bar_seconds(p["barSize"]) or 60
    key = PaceKey(("stream-bars", sub.key, time.monotonic()),
                  (c.conId, c.exchange, p["whatToShow"]), 1, hard=False)

    async def bars() -> Any:
        return await ib.reqHistoricalDataAsync(
            c, "", _duration(bar), p["barSize"], p["whatToShow"], p["useRTH"],
            formatDate=2, keepUpToDate=True)

    return await svc._call(f"stream bars {c.symbol} {p['barSize']}", bars, key=key,
                           small=False)


def cancel_at_ib(ib: Any, sub: LiveSub) -> None:
    """Cancel ``sub``'s data at IB (a handle of a dropped connection: nothing to do)."""
    if sub.handle is None:
        return
    try:
        if sub.kind == "quote":
            ib.cancelMktData(sub.contract)
        if sub.kind == "ticks":
            ib.cancelTickByTickData(sub.contract, sub.params["tickType"])
        if sub.kind == "rtbars":
            ib.cancelRealTimeBars(sub.handle)
        if sub.kind == "pnl":
            p = sub.params
            if p["conId"]:
                ib.cancelPnLSingle(p["account"], p["model"], p["conId"])
            else:
                ib.cancelPnL(p["account"], p["model"])
        else:
            ib.cancelHistoricalData(sub.handle)
    except Exception:  # the handle may belong to a dropped connection
        log.debug("cancel of %s failed", sub.key, exc_info=True)
