"""The live feeds: what the simulator pushes without being asked again.

One loop (``run``) wakes every ``tick_interval`` and streams quotes to reqMktData
subscribers, ticks to tick-by-tick subscribers, a 5-second bar to real-time bar
subscribers each time one closes, and bar updates to keepUpToDate subscribers, as
IB's farms do. Nothing flows while the simulator is frozen or IB is unreachable
(1100); live market data stops while the market-data farm (usfarm) is broken and
keepUpToDate bars while the HMDS farm (ushmds) is, and resume with the OK notice.
What was missed meanwhile is not sent afterwards.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from .clientstate import Client, Subscription
from .env import Prices, Streams
from .market import format_bar_date
from .messages import (
    exec_exchange,
    tick_generic,
    tick_option,
    tick_price,
    tick_size,
    tick_string,
)
from .protocol import Out

log = logging.getLogger("ibhost.sim.feeds")


RT_BAR = 5  # seconds; IB's only real-time bar size
RT_CATCH_UP = 12  # bars sent at most at once, after the simulated clock jumps


async def run(env: Streams) -> None:
    """Stream to every ready client until cancelled."""
    n = 0
    while True:
        await asyncio.sleep(env.tick_interval)
        n += 1
        if env.frozen or env.connectivity != "ok":
            continue
        now = env.now()
        every = max(1, round(env.bar_update_interval / env.tick_interval))
        market_ok = env.farms["usfarm"] and not env.competing_session
        for s in env.ready_sessions():
            for sub in list(s.st.subs.values()):
                try:
                    if sub.kind == "bars":
                        if n % every == 0 and env.farms["ushmds"]:
                            send_bar_update(env, s, sub, now)
                    elif not market_ok:
                        if sub.kind == "rtb":  # bars missed meanwhile are never sent
                            sub.next_bar = max(sub.next_bar, bar_start(now))
                    elif sub.kind == "mkt":
                        send_ticks(env, s, sub, now, False,
                                   sub.listing.symbol in env.no_subscription)
                    elif sub.kind == "rtb":
                        send_real_time_bars(env, s, sub, now)
                    elif sub.kind == "tbt":
                        send_tick_by_tick(env, s, sub, now)
                except Exception:
                    log.exception("streaming to client %s failed", s.st.client_id)


def bar_start(now: float) -> int:
    """Start of the 5-second real-time bar in progress at ``now``."""
    return int(now) // RT_BAR * RT_BAR


def send_real_time_bars(env: Prices, s: Client, sub: Subscription, now: float) -> None:
    """Every bar that closed since the last one sent: ``50,3,reqId,time,o,h,l,c,volume,
    wap,count`` (ib_async ``decoder.py`` realtimeBar). Only TRADES bars carry volume,
    WAP and count; the others send -1."""
    current = bar_start(now)
    first = max(sub.next_bar, current - RT_CATCH_UP * RT_BAR)
    if first >= current:
        return
    sub.next_bar = current
    # the same price path as the quotes and historical 5-second bars; with useRTH,
    # no bars outside regular hours
    for b in env.market.bars(sub.listing, first, current, RT_BAR, sub.what, sub.rth):
        trades = sub.what == "TRADES"
        s.send([Out.REAL_TIME_BARS, 3, sub.req_id, b.start, b.open, b.high, b.low, b.close,
                b.volume if trades else -1, b.wap if trades else -1,
                b.count if trades else -1])


def send_tick_by_tick(env: Prices, s: Client, sub: Subscription, now: float) -> None:
    """One tick when the value changed: ``99,reqId,tickType,time,...`` (ib_async
    ``decoder.py`` tickByTick)."""
    q = env.market.quote(sub.listing, now)
    t = int(now)
    rid = sub.req_id
    if sub.what in ("Last", "AllLast"):
        values: tuple[float, ...] = (q.last,)
        msg = [Out.TICK_BY_TICK, rid, 1 if sub.what == "Last" else 2, t, q.last,
               q.last_size, 0, exec_exchange(sub.listing), ""]
    elif sub.what == "BidAsk":
        values = (q.bid, q.ask) if sub.ignore_size else (q.bid, q.ask, q.bid_size,
                                                         q.ask_size)
        msg = [Out.TICK_BY_TICK, rid, 3, t, q.bid, q.ask, q.bid_size, q.ask_size, 0]
    else:
        mid = round((q.bid + q.ask) / 2, 8)
        values = (mid,)
        msg = [Out.TICK_BY_TICK, rid, 4, t, mid]
    if values != sub.last_sent:
        sub.last_sent = values
        s.send(msg)


LIVE_TO_DELAYED = {1: 66, 2: 67, 4: 68, 6: 72, 7: 73, 9: 75, 14: 76, 0: 69, 3: 70, 5: 71,
                   8: 74, 10: 80, 11: 81, 12: 82, 13: 83}
def send_ticks(env: Prices, s: Client, sub: Subscription, now: float, full: bool,
               delayed: bool) -> None:
    def t(tt: int) -> int:
        return LIVE_TO_DELAYED.get(tt, tt) if delayed else tt

    lst, rid = sub.listing, sub.req_id
    q = env.market.quote(lst, now)
    s.send(tick_price(rid, t(1), q.bid, q.bid_size))
    s.send(tick_price(rid, t(2), q.ask, q.ask_size))
    s.send(tick_price(rid, t(4), q.last, q.last_size))
    s.send(tick_size(rid, t(8), q.volume))
    s.send(tick_string(rid, 88 if delayed else 45, str(int(now))))
    if full:
        s.send(tick_price(rid, t(6), q.high, 0))
        s.send(tick_price(rid, t(7), q.low, 0))
        s.send(tick_price(rid, t(9), q.close, 0))
        s.send(tick_price(rid, t(14), q.open, 0))
    if lst.secType == "OPT":
        for tt, px in ((10, q.bid), (11, q.ask), (12, q.last), (13, (q.bid + q.ask) / 2)):
            s.send(tick_option(rid, t(tt), env.market.greeks(lst, now, px)))
    if not full:
        return
    opt = lst.secType == "OPT"
    und = env.universe.underlying(lst)
    chain_vol = float(max(1, lst.daily_volume // 10))
    if 100 in sub.generic:  # option volume: 29 call, 30 put
        s.send(tick_size(rid, 29, chain_vol * 3))
        s.send(tick_size(rid, 30, chain_vol * 2))
    if 101 in sub.generic:  # open interest: 27 call, 28 put
        # open interest counts whole contracts
        oi = float(int(env.market.model.uniform(und.data_key, "oi", np.array([0]))[0]
                       * 50000) + 1000)
        s.send(tick_size(rid, 27, oi if not opt or lst.right == "C" else 0.0))
        s.send(tick_size(rid, 28, float(int(oi * 0.8)) if not opt or lst.right == "P"
                           else 0.0))
    if 104 in sub.generic:  # historical volatility
        s.send(tick_generic(rid, 23, env.market.hist_vol(und)))
    if 106 in sub.generic:  # implied volatility of the underlying / option
        s.send(tick_generic(rid, 24, env.market.hist_vol(und) * 1.1))


def send_bar_update(env: Prices, s: Client, sub: Subscription, now: float) -> None:
    bars = env.market.bars(sub.listing, int(now) - sub.bar_size * 2, int(now) + 1,
                           sub.bar_size, sub.what, sub.rth, until=int(now) + 1)
    if not bars:
        return
    b = bars[-1]
    date = format_bar_date(b, sub.bar_size, 2, sub.listing.timeZoneId)
    s.send([Out.HISTORICAL_DATA_UPDATE, sub.req_id, b.count, date, b.open, b.close, b.high,
            b.low, b.wap, b.volume])
