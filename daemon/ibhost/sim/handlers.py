"""Message table: incoming message id -> handler. One handler per TWS request type.

Field positions follow ib_async 2.1.0 ``client.py`` (the sender of each request).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .. import ibrules
from . import account, hours
from . import messages as m
from .market import format_bar_date
from .pacing import OPEN_MAX, OPEN_MAX_TEXT, PACING_TEXT
from .protocol import UNSET_DOUBLE, Fields, In, Out
from .session import Session, Subscription
from .state import SimOrder
from .table import HANDLERS, handles
from .universe import OPTION_EXCHANGES, Listing, Query, option_expirations, option_strikes

if TYPE_CHECKING:
    from .server import Simulator

log = logging.getLogger("ibhost.sim.handlers")

HMDS = "Historical Market Data Service error message:"
NOT_FOUND = "No security definition has been found for the request"


def read_contract(f: Fields) -> Query:
    """The C12 block: conId .. tradingClass."""
    return Query(
        conId=f.integer(), symbol=f.text(), secType=f.text(), lastTradeDate=f.text(),
        strike=f.number(), right=f.text(), multiplier=f.text(), exchange=f.text(),
        primaryExchange=f.text(), currency=f.text(), localSymbol=f.text(), tradingClass=f.text(),
    )


def resolve(sim: Simulator, s: Session, req_id: int, q: Query) -> Listing | None:
    """Exactly one listing, or error 200 (not found / ambiguous) and None."""
    found = sim.universe.match(q)
    if not found:
        s.error(req_id, 200, NOT_FOUND)
        return None
    if len(found) > 1:
        s.error(req_id, 200, f"The contract description specified for {q.describe()} is "
                             "ambiguous.")
        return None
    return found[0]


# --- connection-level ------------------------------------------------------------------


@handles(In.REQ_CURRENT_TIME, "reqCurrentTime")
async def req_current_time(sim: Simulator, s: Session, fields: list[str]) -> None:
    s.send([Out.CURRENT_TIME, 1, int(sim.now())])


@handles(In.REQ_IDS, "reqIds")
async def req_ids(sim: Simulator, s: Session, fields: list[str]) -> None:
    s.send([Out.NEXT_VALID_ID, 1, sim.broker.next_valid_id(s.st.client_id)])


@handles(In.REQ_MANAGED_ACCTS, "reqManagedAccts")
async def req_managed_accts(sim: Simulator, s: Session, fields: list[str]) -> None:
    s.send([Out.MANAGED_ACCTS, 1, sim.broker.account])


@handles(In.REQ_MARKET_DATA_TYPE, "reqMarketDataType")
async def req_market_data_type(sim: Simulator, s: Session, fields: list[str]) -> None:
    t = Fields(fields, 2).integer(1)
    if t not in (1, 2, 3, 4):
        s.error(-1, 321, f"Error validating request.-'bQ' : cause - Invalid market data type {t}")
        return
    s.st.md_type = t


@handles(In.REQ_AUTO_OPEN_ORDERS, "reqAutoOpenOrders")
async def req_auto_open_orders(sim: Simulator, s: Session, fields: list[str]) -> None:
    if s.st.client_id != 0:
        s.error(-1, 321, "Error validating request.-'bF' : cause - Auto bind is only "
                         "available to client id 0")


# --- contracts --------------------------------------------------------------------------


@handles(In.REQ_CONTRACT_DATA, "reqContractDetails", req_pos=2)
async def req_contract_details(sim: Simulator, s: Session, fields: list[str]) -> None:
    f = Fields(fields, 2)
    req_id = f.integer()
    q = read_contract(f)
    q.includeExpired = f.flag()
    sec_id_type, sec_id = f.text(), f.text()
    if not q.secType and not q.conId:
        s.error(req_id, 321, "Error validating request.-'bc' : cause - Invalid security type -")
        return
    found = sim.universe.match(q) if (q.symbol or q.conId or q.localSymbol) else []
    if not found:
        if sec_id_type or sec_id:
            log.info("secId lookups (%s=%s) are not simulated", sec_id_type, sec_id)
        s.error(req_id, 200, NOT_FOUND)
        return
    today = sim.universe.today
    for lst in found:
        exchange = q.exchange.upper() if q.exchange else lst.exchange
        th = hours.trading_hours(lst.hours, lst.timeZoneId, today)
        s.send(m.contract_data(s.st.version, req_id, lst, exchange, th))
    s.send([Out.CONTRACT_DATA_END, 1, req_id])


@handles(In.REQ_SEC_DEF_OPT_PARAMS, "reqSecDefOptParams", req_pos=1)
async def req_sec_def_opt_params(sim: Simulator, s: Session, fields: list[str]) -> None:
    f = Fields(fields, 1)
    req_id = f.integer()
    und_symbol, fut_fop_exchange = f.text(), f.text()
    und_sec_type, und_con_id = f.text(), f.integer()
    und = sim.universe.by_conid(und_con_id) if und_con_id else None
    if und is None:
        matches = sim.universe.match(Query(symbol=und_symbol, secType=und_sec_type or "STK",
                                           currency="USD"))
        und = matches[0] if len(matches) == 1 else None
    chain = [o for o in sim.universe.all() if o.secType == "OPT" and und is not None
             and o.underConId == und.conId]
    if und is not None and chain and not fut_fop_exchange:
        exps = [e.strftime("%Y%m%d") for e in option_expirations(sim.universe.today)]
        strikes = option_strikes(und.base_price)
        for ex in OPTION_EXCHANGES:
            s.send([Out.SECURITY_DEFINITION_OPTION_PARAMETER, req_id, ex, und.conId,
                    und.symbol, "100", len(exps), *exps, len(strikes), *strikes])
    s.send([Out.SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id])


# --- historical -------------------------------------------------------------------------


def _hist_fail(sim: Simulator, s: Session, req_id: int, rule: str) -> None:
    sim.stats.violation(rule, s.st.client_id, req_id)
    s.error(req_id, 162, PACING_TEXT)


def _pacing_ok(sim: Simulator, s: Session, req_id: int, ident: tuple[object, ...],
               burst: tuple[object, ...], weight: int, hard: bool = True) -> bool:
    """The forced-pacing fault, then (for ``hard`` requests) IB's hard rules."""
    if sim.forced_pacing > 0:
        sim.forced_pacing -= 1
        _hist_fail(sim, s, req_id, "forced")
        return False
    if not hard:
        return True
    rule = sim.pacer.check(ident, burst, weight, now=s.arrived)
    if rule is not None:
        _hist_fail(sim, s, req_id, rule)
        return False
    return True


def _duration_start(lst: Listing, end: int, n: int, unit: str, rth: bool) -> int:
    if unit == "S":
        return end - n
    if unit == "D":
        sess = hours.sessions_before(lst.hours, end, n, rth)
        return sess[0].start if sess else end
    e = dt.datetime.fromtimestamp(end, dt.UTC)
    if unit == "W":
        return int((e - dt.timedelta(weeks=n)).timestamp())
    if unit == "M":
        month = e.month - n
        year = e.year + (month - 1) // 12
        month = (month - 1) % 12 + 1
        day = min(e.day, 28)
        return int(e.replace(year=year, month=month, day=day).timestamp())
    return int(e.replace(year=e.year - n).timestamp())


@handles(In.REQ_HISTORICAL_DATA, "reqHistoricalData", req_pos=1)
async def req_historical_data(sim: Simulator, s: Session, fields: list[str]) -> None:
    f = Fields(fields, 1)
    req_id = f.integer()
    q = read_contract(f)
    q.includeExpired = f.flag()
    end_text, bar_text, dur_text = f.text(), f.text(), f.text()
    rth = f.flag()
    what = f.text().upper()
    format_date = f.integer(1)
    if q.secType == "BAG":
        f.skip(4 * f.integer())
    keep_up = f.flag()
    lst = resolve(sim, s, req_id, q)
    if lst is None:
        return
    bar = ibrules.bar_seconds(bar_text)
    if bar is None:
        s.error(req_id, 321, "Error validating request.-'bK' : cause - Historical data bar size "
                             f"setting is invalid. Legal ones are: {ibrules.LEGAL_BAR_TEXT}")
        return
    dur = ibrules.parse_duration(dur_text)
    if dur is None or dur[0] <= 0:
        s.error(req_id, 321, "Error validating request.-'bK' : cause - Historical data "
                             f"duration format is invalid: '{dur_text}'")
        return
    if what not in ibrules.WHAT_TO_SHOW:
        s.error(req_id, 321, f"Error validating request.-'bK' : cause - Invalid whatToShow "
                             f"'{what}'")
        return
    if keep_up and end_text:
        s.error(req_id, 321, "Error validating request.-'bK' : cause - End date not supported "
                             "with live updates")
        return
    try:
        end_dt = ibrules.parse_end_datetime(end_text) if end_text else sim.now_dt()
    except (ValueError, KeyError):
        s.error(req_id, 321, "Error validating request.-'bK' : cause - Invalid end date/time "
                             f"'{end_text}'")
        return
    lo, hi = ibrules.step_limits(ibrules.duration_seconds(*dur))
    if bar < lo:
        s.error(req_id, 162, f"{HMDS}Time length exceed max.")
        return
    if bar > hi:
        s.error(req_id, 162, f"{HMDS}invalid step")
        return
    if lst.secType == "CASH" and what == "TRADES":
        s.error(req_id, 162, f"{HMDS}No historical market data for {lst.symbol}/CASH@FXSUBPIP "
                             f"Last {bar_text}")
        return
    if lst.symbol in sim.no_subscription:
        s.error(req_id, 162, f"{HMDS}No market data permissions for "
                             f"{lst.primaryExchange or lst.exchange} {lst.secType}")
        return
    ident = ("hist", lst.conId, q.exchange, end_text, bar_text, dur_text, rth, what)
    burst = (lst.conId, q.exchange, what)
    # IB states the hard rules for bars of 30 seconds or less; larger bars get the
    # soft throttle ("--pacing strict" applies the hard rules to every size).
    hard = sim.pacing_mode == "strict" or ibrules.hard_paced(bar)
    if len(s.st.open_hist) >= OPEN_MAX:
        s.error(req_id, 322, OPEN_MAX_TEXT)
        return
    if not _pacing_ok(sim, s, req_id, ident, burst, 2 if what == "BID_ASK" else 1, hard):
        return
    end = int(end_dt.timestamp())
    start = _duration_start(lst, end, dur[0], dur[1], rth)
    end = min(end, int(sim.now()))  # IB has no bars after now
    wait = 0.0 if hard else sim.throttle.admit(s.st.client_id, s.arrived)
    req = HistRequest(req_id, lst, q.exchange or lst.exchange, start, end, end_dt, bar, what,
                      rth, format_date, keep_up, wait)
    s.st.open_hist[req_id] = asyncio.get_running_loop().create_task(_serve_bars(sim, s, req))


@dataclass(frozen=True)
class HistRequest:
    req_id: int
    lst: Listing
    exchange: str
    start: int
    end: int
    end_dt: dt.datetime
    bar: int
    what: str
    rth: bool
    format_date: int
    keep_up: bool
    wait: float


async def _serve_bars(sim: Simulator, s: Session, r: HistRequest) -> None:
    """Answer one historical request after the soft throttle's wait and service time;
    open until answered or cancelled (cancelHistoricalData)."""
    lst = r.lst
    try:
        if r.wait > 0:
            await asyncio.sleep(r.wait)
        bars = [] if r.start >= r.end else await asyncio.to_thread(
            sim.market.bars, lst, r.start, r.end, r.bar, r.what, r.rth)
        await asyncio.sleep(sim.throttle.service_time(len(bars)))
        await sim.unfrozen()
        if not bars:
            s.error(r.req_id, 162, f"{HMDS}HMDS query returned no data: "
                                   f"{lst.localSymbol}@{r.exchange} "
                                   f"{r.what.title().replace('_', '')}")
            return
        sim.stats.historical_served += 1
        rows = [
            (format_bar_date(b, r.bar, r.format_date, lst.timeZoneId), b.open, b.high, b.low,
             b.close, b.volume, b.wap, b.count)
            for b in bars
        ]
        tz = lst.timeZoneId
        fmt_range = "%Y%m%d %H:%M:%S"
        start_s = dt.datetime.fromtimestamp(r.start, dt.UTC).astimezone(
            hours.ZoneInfo(tz)).strftime(fmt_range) + " " + tz
        end_s = r.end_dt.astimezone(hours.ZoneInfo(tz)).strftime(fmt_range) + " " + tz
        s.send(m.historical_data(r.req_id, start_s, end_s, rows))
        if r.keep_up:
            s.st.subs[r.req_id] = Subscription(r.req_id, lst, set(), "bars", r.bar, r.what,
                                               r.rth)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # the request fails, the connection stays up
        log.exception("historical request %s failed", r.req_id)
        s.error(r.req_id, 162, f"{HMDS}{type(e).__name__}")
    finally:
        s.st.open_hist.pop(r.req_id, None)


def send_bar_update(sim: Simulator, s: Session, sub: Subscription, now: float) -> None:
    bars = sim.market.bars(sub.listing, int(now) - sub.bar_size * 2, int(now) + 1,
                           sub.bar_size, sub.what, sub.rth)
    if not bars:
        return
    b = bars[-1]
    date = format_bar_date(b, sub.bar_size, 2, sub.listing.timeZoneId)
    s.send([Out.HISTORICAL_DATA_UPDATE, sub.req_id, b.count, date, b.open, b.close, b.high,
            b.low, b.wap, b.volume])


@handles(In.CANCEL_HISTORICAL_DATA, "cancelHistoricalData", req_pos=2)
async def cancel_historical_data(sim: Simulator, s: Session, fields: list[str]) -> None:
    req_id = Fields(fields, 2).integer()
    s.st.subs.pop(req_id, None)
    task = s.st.open_hist.pop(req_id, None)
    if task is not None:
        task.cancel()
        sim.stats.historical_cancelled += 1


@handles(In.REQ_HEAD_TIMESTAMP, "reqHeadTimeStamp", req_pos=1)
async def req_head_timestamp(sim: Simulator, s: Session, fields: list[str]) -> None:
    f = Fields(fields, 1)
    req_id = f.integer()
    q = read_contract(f)
    q.includeExpired = f.flag()
    rth = f.flag()
    what = f.text().upper()
    format_date = f.integer(1)
    lst = resolve(sim, s, req_id, q)
    if lst is None:
        return
    if what not in ibrules.WHAT_TO_SHOW:
        s.error(req_id, 321, f"Error validating request.-'bK' : cause - Invalid whatToShow "
                             f"'{what}'")
        return
    # identical means every parameter: useRTH too (docs/simulator.md)
    ident = ("head", lst.conId, q.exchange, what, rth)
    if not _pacing_ok(sim, s, req_id, ident, (lst.conId, q.exchange, what), 1):
        return
    head = lst.head
    text = str(int(head.timestamp())) if format_date == 2 else head.strftime("%Y%m%d-%H:%M:%S")
    s.send([Out.HEAD_TIMESTAMP, req_id, text])


@handles(In.CANCEL_HEAD_TIMESTAMP, "cancelHeadTimeStamp", req_pos=1)
async def cancel_head_timestamp(sim: Simulator, s: Session, fields: list[str]) -> None:
    return None


# --- market data ------------------------------------------------------------------------

LIVE_TO_DELAYED = {1: 66, 2: 67, 4: 68, 6: 72, 7: 73, 9: 75, 14: 76, 0: 69, 3: 70, 5: 71,
                   8: 74, 10: 80, 11: 81, 12: 82, 13: 83}
NO_SUB_TEXT = {
    354: "Requested market data is not subscribed.Delayed market data is available.",
    10089: "Requested market data requires additional subscription for API. See link in "
           "'Market Data Connections' dialog for more details.Delayed market data is available.",
}
DELAYED_TEXT = "Requested market data is not subscribed. Displaying delayed market data."


def send_ticks(sim: Simulator, s: Session, sub: Subscription, now: float, full: bool,
               delayed: bool) -> None:
    def t(tt: int) -> int:
        return LIVE_TO_DELAYED.get(tt, tt) if delayed else tt

    lst, rid = sub.listing, sub.req_id
    q = sim.market.quote(lst, now)
    s.send(m.tick_price(rid, t(1), q.bid, q.bid_size))
    s.send(m.tick_price(rid, t(2), q.ask, q.ask_size))
    s.send(m.tick_price(rid, t(4), q.last, q.last_size))
    s.send(m.tick_size(rid, t(8), q.volume))
    s.send(m.tick_string(rid, 88 if delayed else 45, str(int(now))))
    if full:
        s.send(m.tick_price(rid, t(6), q.high, 0))
        s.send(m.tick_price(rid, t(7), q.low, 0))
        s.send(m.tick_price(rid, t(9), q.close, 0))
        s.send(m.tick_price(rid, t(14), q.open, 0))
    if lst.secType == "OPT":
        for tt, px in ((10, q.bid), (11, q.ask), (12, q.last), (13, (q.bid + q.ask) / 2)):
            s.send(m.tick_option(rid, t(tt), sim.market.greeks(lst, now, px)))
    if not full:
        return
    opt = lst.secType == "OPT"
    und = sim.universe.underlying(lst)
    chain_vol = float(max(1, lst.daily_volume // 10))
    if 100 in sub.generic:  # option volume: 29 call, 30 put
        s.send(m.tick_size(rid, 29, chain_vol * 3))
        s.send(m.tick_size(rid, 30, chain_vol * 2))
    if 101 in sub.generic:  # open interest: 27 call, 28 put
        # open interest counts whole contracts
        oi = float(int(sim.market.model.uniform(und.data_key, "oi", np.array([0]))[0]
                       * 50000) + 1000)
        s.send(m.tick_size(rid, 27, oi if not opt or lst.right == "C" else 0.0))
        s.send(m.tick_size(rid, 28, float(int(oi * 0.8)) if not opt or lst.right == "P"
                           else 0.0))
    if 104 in sub.generic:  # historical volatility
        s.send(m.tick_generic(rid, 23, sim.market.hist_vol(und)))
    if 106 in sub.generic:  # implied volatility of the underlying / option
        s.send(m.tick_generic(rid, 24, sim.market.hist_vol(und) * 1.1))


@handles(In.REQ_MKT_DATA, "reqMktData", req_pos=2)
async def req_mkt_data(sim: Simulator, s: Session, fields: list[str]) -> None:
    f = Fields(fields, 2)
    req_id = f.integer()
    q = read_contract(f)
    if q.secType == "BAG":
        f.skip(4 * f.integer())
    if f.flag():
        f.skip(3)  # delta-neutral contract
    generic_text, snapshot, _regulatory = f.text(), f.flag(), f.flag()
    try:
        generic = {int(x) for x in generic_text.split(",") if x.strip()}
    except ValueError:
        s.error(req_id, 321, f"Error validating request.-'bW' : cause - Invalid generic tick "
                             f"list '{generic_text}'")
        return
    if snapshot and generic:
        s.error(req_id, 321, "Error validating request.-'bW' : cause - Snapshot market data "
                             "subscription is not applicable to generic ticks")
        return
    lst = resolve(sim, s, req_id, q)
    if lst is None:
        return
    if sim.competing_session:
        s.error(req_id, 10197, "No market data during competing live session")
        return
    delayed = False
    code = sim.no_subscription.get(lst.symbol)
    if code is not None:
        if s.st.md_type in (1, 2):
            s.error(req_id, code, NO_SUB_TEXT[code] + f"{lst.symbol} "
                                  f"{lst.primaryExchange or lst.exchange}/TOP/ALL")
            return
        delayed = True
        s.error(req_id, 10167, DELAYED_TEXT)
    md_type = 3 if delayed and s.st.md_type in (3, 4) else 1
    if delayed and s.st.md_type == 4:
        md_type = 4
    s.send([Out.MARKET_DATA_TYPE, 1, req_id, md_type])
    sub = Subscription(req_id, lst, generic)
    send_ticks(sim, s, sub, sim.now(), True, delayed)
    if snapshot:
        s.send([Out.TICK_SNAPSHOT_END, 1, req_id])
    else:
        s.st.subs[req_id] = sub


@handles(In.CANCEL_MKT_DATA, "cancelMktData", req_pos=2)
async def cancel_mkt_data(sim: Simulator, s: Session, fields: list[str]) -> None:
    s.st.subs.pop(Fields(fields, 2).integer(), None)


# --- orders -----------------------------------------------------------------------------


@handles(In.PLACE_ORDER, "placeOrder", req_pos=1)
async def place_order(sim: Simulator, s: Session, fields: list[str]) -> None:
    f = Fields(fields, 1)
    order_id = f.integer()
    q = read_contract(f)
    f.text()
    f.text()  # secIdType, secId
    action = f.text().upper()
    qty = f.number()
    order_type = f.text().upper()
    lmt = f.number(UNSET_DOUBLE)
    aux = f.number(UNSET_DOUBLE)
    tif = f.text() or "DAY"
    f.text()  # ocaGroup
    account = f.text() or sim.broker.account
    f.text()
    f.text()  # openClose, origin
    order_ref = f.text()
    transmit = f.flag() if f.pos < len(fields) else True
    f.skip(5)  # parentId, blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = f.flag()
    broker = sim.broker
    key = (s.st.client_id, order_id)
    existing = broker.orders.get(key)
    if existing is None and order_id < broker.next_valid_id(s.st.client_id):
        s.error(order_id, 103, "Duplicate order id")
        return
    if existing is not None and existing.status == "Filled":
        s.error(order_id, 104, "Can't modify a filled order")
        return
    if existing is not None and not existing.is_open:
        s.error(order_id, 103, "Duplicate order id")
        return
    lst = resolve(sim, s, order_id, q)
    if lst is None:
        return
    if action not in ("BUY", "SELL"):
        s.error(order_id, 321, f"Error validating request.-'bO' : cause - Invalid action "
                               f"'{action}'")
        return
    if qty <= 0:
        s.error(order_id, 321, "Error validating request.-'bO' : cause - The order size must be "
                               "positive")
        return
    if order_type not in ("LMT", "MKT", "STP", "STP LMT"):
        s.error(order_id, 387, "Unsupported order type for this exchange and security type.")
        return
    if account != broker.account:
        s.error(order_id, 321, f"Error validating request.-'bO' : cause - Invalid account "
                               f"'{account}'")
        return
    if order_type in ("LMT", "STP LMT") and lmt == UNSET_DOUBLE:
        s.error(order_id, 321, "Error validating request.-'bO' : cause - Limit price is required")
        return
    if order_type in ("STP", "STP LMT") and aux == UNSET_DOUBLE:
        s.error(order_id, 321, "Error validating request.-'bO' : cause - Stop price is required")
        return
    lmt_p = None if lmt == UNSET_DOUBLE else lmt
    aux_p = None if aux == UNSET_DOUBLE else aux
    if existing is not None:
        order = existing
        order.totalQuantity, order.orderType = qty, order_type
        order.lmtPrice, order.auxPrice, order.tif = lmt_p, aux_p, tif
    else:
        broker.use_id(s.st.client_id, order_id)
        order = SimOrder(
            orderId=order_id, clientId=s.st.client_id, permId=broker.new_perm_id(), listing=lst,
            action=action, totalQuantity=qty, orderType=order_type, lmtPrice=lmt_p,
            auxPrice=aux_p, tif=tif, account=account, orderRef=order_ref,
            outsideRth=outside_rth, transmit=transmit,
        )
        broker.orders[key] = order
        order.status = "PreSubmitted"
        s.send(m.open_order(s.st.version, order))
        s.send(m.order_status(order))
    evaluate_order(sim, s, order)


def _fill_price(sim: Simulator, order: SimOrder) -> float | None:
    q = sim.market.quote(order.listing, sim.now())
    buy = order.action == "BUY"
    touch = q.ask if buy else q.bid
    if order.orderType == "MKT":
        return touch
    if order.orderType == "LMT":
        assert order.lmtPrice is not None
        ok = order.lmtPrice >= touch if buy else order.lmtPrice <= touch
        return touch if ok else None
    assert order.auxPrice is not None
    triggered = q.last >= order.auxPrice if buy else q.last <= order.auxPrice
    if not triggered:
        return None
    if order.orderType == "STP":
        return touch
    assert order.lmtPrice is not None
    ok = order.lmtPrice >= touch if buy else order.lmtPrice <= touch
    return touch if ok else None


def evaluate_order(sim: Simulator, s: Session, order: SimOrder) -> None:
    price = _fill_price(sim, order)
    if price is None:
        order.status = "PreSubmitted" if order.orderType.startswith("STP") else "Submitted"
        s.send(m.open_order(s.st.version, order))
        s.send(m.order_status(order))
        return
    ex = sim.broker.fill(order, price, sim.now_dt())
    s.send(m.exec_details(s.st.version, -1, ex))
    s.send(m.order_status(order))
    s.send(m.open_order(s.st.version, order))
    s.send(m.commission_report(ex))
    account.publish_portfolio(sim, order.listing.conId)


@handles(In.CANCEL_ORDER, "cancelOrder", req_pos=2)
async def cancel_order(sim: Simulator, s: Session, fields: list[str]) -> None:
    order_id = Fields(fields, 2).integer()
    order = sim.broker.orders.get((s.st.client_id, order_id))
    if order is None:
        s.error(order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found.")
        return
    if not order.is_open:
        s.error(order_id, 10148, f"OrderId {order_id} that needs to be cancelled cannot be "
                                 f"cancelled, state: {order.status}.")
        return
    _cancel(sim, s, order)


def _cancel(sim: Simulator, s: Session, order: SimOrder) -> None:
    order.status = "Cancelled"
    order.completedStatus = "Cancelled by Trader"
    order.completedTime = sim.now_dt().strftime("%Y%m%d %H:%M:%S UTC")
    s.send(m.order_status(order))
    s.error(order.orderId, 202, "Order Canceled - reason:")


@handles(In.REQ_GLOBAL_CANCEL, "reqGlobalCancel")
async def req_global_cancel(sim: Simulator, s: Session, fields: list[str]) -> None:
    for order in sim.broker.open_orders():
        owner = next((x for x in sim.ready_sessions() if x.st.client_id == order.clientId), s)
        _cancel(sim, owner, order)


@handles(In.REQ_OPEN_ORDERS, "reqOpenOrders")
async def req_open_orders(sim: Simulator, s: Session, fields: list[str]) -> None:
    for o in sim.broker.open_orders(s.st.client_id):
        s.send(m.open_order(s.st.version, o))
        s.send(m.order_status(o))
    s.send([Out.OPEN_ORDER_END, 1])


@handles(In.REQ_ALL_OPEN_ORDERS, "reqAllOpenOrders")
async def req_all_open_orders(sim: Simulator, s: Session, fields: list[str]) -> None:
    for o in sim.broker.open_orders():
        s.send(m.open_order(s.st.version, o))
        s.send(m.order_status(o))
    s.send([Out.OPEN_ORDER_END, 1])


@handles(In.REQ_COMPLETED_ORDERS, "reqCompletedOrders")
async def req_completed_orders(sim: Simulator, s: Session, fields: list[str]) -> None:
    for o in sim.broker.completed_orders():
        s.send(m.completed_order(s.st.version, o))
    s.send([Out.COMPLETED_ORDERS_END])


@handles(In.REQ_EXECUTIONS, "reqExecutions", req_pos=2)
async def req_executions(sim: Simulator, s: Session, fields: list[str]) -> None:
    f = Fields(fields, 2)
    req_id = f.integer()
    client_id, acct, since = f.integer(), f.text(), f.text()
    symbol, sec_type, exchange, side = f.text(), f.text(), f.text(), f.text()
    since_dt = None
    if since:
        try:
            since_dt = ibrules.parse_end_datetime(since)
        except (ValueError, KeyError):
            s.error(req_id, 321, f"Error validating request.-'bX' : cause - Invalid time "
                                 f"'{since}'")
            return
    for ex in sim.broker.executions:
        o = ex.order
        if client_id and o.clientId != client_id:
            continue
        if acct and o.account != acct:
            continue
        if since_dt and ex.time < since_dt:
            continue
        if symbol and o.listing.symbol != symbol.upper():
            continue
        if sec_type and o.listing.secType != sec_type.upper():
            continue
        if exchange and exchange.upper() not in (m._exec_exchange(o.listing), "SMART"):
            continue
        if side and {"BUY": "BUY", "BOT": "BUY", "SELL": "SELL", "SLD": "SELL"}.get(
                side.upper()) != o.action:
            continue
        s.send(m.exec_details(s.st.version, req_id, ex))
        s.send(m.commission_report(ex))
    s.send([Out.EXECUTION_DATA_END, 1, req_id])


__all__ = ["HANDLERS", "account"]
