"""Historical data handlers: reqHistoricalData (keepUpToDate too), reqHeadTimeStamp.

IB's pacing rules apply here (``pacing.py``); field positions follow ib_async 2.1.0
``client.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from .. import ibrules
from .clientstate import Client, Subscription
from .contracts import read_contract, resolve
from .env import Hmds
from .hours import ZoneInfo, sessions_before
from .market import format_bar_date
from .messages import historical_data
from .pacing import OPEN_MAX, OPEN_MAX_TEXT, PACING_TEXT
from .protocol import Fields, In, Out
from .table import Routes
from .universe import Listing

log = logging.getLogger("ibhost.sim.historical")

routes = Routes()

HMDS = "Historical Market Data Service error message:"


def _hist_fail(env: Hmds, s: Client, req_id: int, rule: str) -> None:
    env.stats.violation(rule, s.st.client_id, req_id)
    s.error(req_id, 162, PACING_TEXT)


def _pacing_ok(env: Hmds, s: Client, req_id: int, ident: tuple[object, ...],
               burst: tuple[object, ...], weight: int, hard: bool = True) -> bool:
    """The forced-pacing fault, then (for ``hard`` requests) IB's hard rules."""
    if env.forced_pacing > 0:
        env.forced_pacing -= 1
        _hist_fail(env, s, req_id, "forced")
        return False
    if not hard:
        return True
    rule = env.pacer.check(ident, burst, weight, now=s.arrived)
    if rule is not None:
        _hist_fail(env, s, req_id, rule)
        return False
    return True


def _duration_start(lst: Listing, end: int, n: int, unit: str, rth: bool) -> int:
    if unit == "S":
        return end - n
    if unit == "D":
        sess = sessions_before(lst.hours, end, n, rth)
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


@routes(In.REQ_HISTORICAL_DATA, "reqHistoricalData", req_pos=1)
async def req_historical_data(env: Hmds, s: Client, fields: list[str]) -> None:
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
    lst = resolve(env, s, req_id, q)
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
        end_dt = ibrules.parse_end_datetime(end_text) if end_text else env.now_dt()
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
    if lst.symbol in env.no_subscription:
        s.error(req_id, 162, f"{HMDS}No market data permissions for "
                             f"{lst.primaryExchange or lst.exchange} {lst.secType}")
        return
    ident = ("hist", lst.conId, q.exchange, end_text, bar_text, dur_text, rth, what)
    burst = (lst.conId, q.exchange, what)
    # IB states the hard rules for bars of 30 seconds or less; larger bars get the
    # soft throttle ("--pacing strict" applies the hard rules to every size).
    hard = env.pacing_mode == "strict" or ibrules.hard_paced(bar)
    if len(s.st.open_hist) >= OPEN_MAX:
        s.error(req_id, 322, OPEN_MAX_TEXT)
        return
    if not _pacing_ok(env, s, req_id, ident, burst, 2 if what == "BID_ASK" else 1, hard):
        return
    end = int(end_dt.timestamp())
    start = _duration_start(lst, end, dur[0], dur[1], rth)
    end = min(end, int(env.now()))  # IB has no bars after now
    wait = 0.0 if hard else env.throttle.admit(s.st.client_id, s.arrived)
    req = HistRequest(req_id, lst, q.exchange or lst.exchange, start, end, end_dt, bar, what,
                      rth, format_date, keep_up, wait)
    s.st.open_hist[req_id] = asyncio.get_running_loop().create_task(_serve_bars(env, s, req))


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


async def _serve_bars(env: Hmds, s: Client, r: HistRequest) -> None:
    """Answer one historical request after the soft throttle's wait and service time;
    open until answered or cancelled (cancelHistoricalData)."""
    lst = r.lst
    try:
        if r.wait > 0:
            await asyncio.sleep(r.wait)
        bars = [] if r.start >= r.end else await asyncio.to_thread(
            env.market.bars, lst, r.start, r.end, r.bar, r.what, r.rth, int(env.now()) + 1)
        await asyncio.sleep(env.throttle.service_time(len(bars)))
        await env.unfrozen()
        if not bars:
            s.error(r.req_id, 162, f"{HMDS}HMDS query returned no data: "
                                   f"{lst.localSymbol}@{r.exchange} "
                                   f"{r.what.title().replace('_', '')}")
            return
        env.stats.historical_served += 1
        rows = [
            (format_bar_date(b, r.bar, r.format_date, lst.timeZoneId), b.open, b.high, b.low,
             b.close, b.volume, b.wap, b.count)
            for b in bars
        ]
        tz = lst.timeZoneId
        fmt_range = "%Y%m%d %H:%M:%S"
        start_s = dt.datetime.fromtimestamp(r.start, dt.UTC).astimezone(
            ZoneInfo(tz)).strftime(fmt_range) + " " + tz
        end_s = r.end_dt.astimezone(ZoneInfo(tz)).strftime(fmt_range) + " " + tz
        s.send(historical_data(r.req_id, start_s, end_s, rows))
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


@routes(In.CANCEL_HISTORICAL_DATA, "cancelHistoricalData", req_pos=2)
async def cancel_historical_data(env: Hmds, s: Client, fields: list[str]) -> None:
    req_id = Fields(fields, 2).integer()
    s.st.subs.pop(req_id, None)
    task = s.st.open_hist.pop(req_id, None)
    if task is not None:
        task.cancel()
        env.stats.historical_cancelled += 1


@routes(In.REQ_HEAD_TIMESTAMP, "reqHeadTimeStamp", req_pos=1)
async def req_head_timestamp(env: Hmds, s: Client, fields: list[str]) -> None:
    f = Fields(fields, 1)
    req_id = f.integer()
    q = read_contract(f)
    q.includeExpired = f.flag()
    rth = f.flag()
    what = f.text().upper()
    format_date = f.integer(1)
    lst = resolve(env, s, req_id, q)
    if lst is None:
        return
    if what not in ibrules.WHAT_TO_SHOW:
        s.error(req_id, 321, f"Error validating request.-'bK' : cause - Invalid whatToShow "
                             f"'{what}'")
        return
    # identical means every parameter: useRTH too (docs/simulator.md)
    ident = ("head", lst.conId, q.exchange, what, rth)
    if not _pacing_ok(env, s, req_id, ident, (lst.conId, q.exchange, what), 1):
        return
    head = lst.head
    text = str(int(head.timestamp())) if format_date == 2 else head.strftime("%Y%m%d-%H:%M:%S")
    s.send([Out.HEAD_TIMESTAMP, req_id, text])


@routes(In.CANCEL_HEAD_TIMESTAMP, "cancelHeadTimeStamp", req_pos=1)
async def cancel_head_timestamp(env: Hmds, s: Client, fields: list[str]) -> None:
    return None
