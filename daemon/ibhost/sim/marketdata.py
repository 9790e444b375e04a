"""Market-data handlers: reqMktData (streaming and snapshot), reqRealTimeBars,
reqTickByTickData and their cancels.

The first answer goes out here; the stream that follows is ``feeds.py``'s. Every
live subscription takes one of the user's market-data lines (``lines.py``).
Field positions follow ib_async 2.1.0 ``client.py``.
"""

from __future__ import annotations

from .clientstate import Client, Subscription
from .contracts import read_contract, resolve
from .env import Quotes
from .feeds import bar_start, send_ticks
from .lines import refuse
from .notices import TEXT_10197
from .protocol import Fields, In, Out
from .table import Routes
from .universe import Listing

routes = Routes()

NO_SUB_TEXT = {
    354: "Requested market data is not subscribed.Delayed market data is available.",
    10089: "Requested market data requires additional subscription for API. See link in "
           "'Market Data Connections' dialog for more details.Delayed market data is available.",
}
DELAYED_TEXT = "Requested market data is not subscribed. Displaying delayed market data."
RT_WHAT = ("TRADES", "MIDPOINT", "BID", "ASK")
# reqTickByTickData's tickType (case sensitive, TWS API docs) -> the type on the wire
TBT_TYPES = {"Last": 1, "AllLast": 2, "BidAsk": 3, "MidPoint": 4}
RT_PACING_TEXT = "Invalid Real-time Query:Historical data request pacing violation"


@routes(In.REQ_MKT_DATA, "reqMktData", req_pos=2)
async def req_mkt_data(env: Quotes, s: Client, fields: list[str]) -> None:
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
    lst = resolve(env, s, req_id, q)
    if lst is None:
        return
    if env.competing_session:
        s.error(req_id, 10197, TEXT_10197)
        return
    # a snapshot holds a line too, until its tickSnapshotEnd
    if refuse(env.ready_sessions(), env.max_lines, s, req_id, "mkt"):
        return
    delayed = False
    code = env.no_subscription.get(lst.symbol)
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
    send_ticks(env, s, sub, env.now(), True, delayed)
    if snapshot:
        s.send([Out.TICK_SNAPSHOT_END, 1, req_id])
    else:
        s.st.subs[req_id] = sub


@routes(In.CANCEL_MKT_DATA, "cancelMktData", req_pos=2)
async def cancel_mkt_data(env: Quotes, s: Client, fields: list[str]) -> None:
    _cancel(s, Fields(fields, 2).integer(), "mkt")


def _live_ok(env: Quotes, s: Client, req_id: int, lst: Listing, kind: str) -> bool:
    """The checks a real-time bar or tick-by-tick request shares with reqMktData."""
    if env.competing_session:
        s.error(req_id, 10197, TEXT_10197)
        return False
    code = env.no_subscription.get(lst.symbol)
    if code is not None:  # no delayed fallback for these
        s.error(req_id, code, NO_SUB_TEXT[code] + f"{lst.symbol} "
                              f"{lst.primaryExchange or lst.exchange}/TOP/ALL")
        return False
    return not refuse(env.ready_sessions(), env.max_lines, s, req_id, kind)


@routes(In.REQ_REAL_TIME_BARS, "reqRealTimeBars", req_pos=2)
async def req_real_time_bars(env: Quotes, s: Client, fields: list[str]) -> None:
    f = Fields(fields, 2)
    req_id = f.integer()
    q = read_contract(f)
    bar_size, what, rth = f.integer(), f.text().upper(), f.flag()
    if bar_size != 5:
        s.error(req_id, 321, "Error validating request.-'bR' : cause - Invalid bar size "
                             f"{bar_size}: real time bars are 5 seconds")
        return
    if what not in RT_WHAT:
        s.error(req_id, 321, f"Error validating request.-'bR' : cause - Invalid whatToShow "
                             f"'{what}'")
        return
    lst = resolve(env, s, req_id, q)
    if lst is None or not _live_ok(env, s, req_id, lst, "rtb"):
        return
    # real-time bars follow the small-bar pacing rules (TWS API docs, 5 Second Real
    # Time Bars): no more than 60 new requests in 10 minutes, and so on
    rule = env.pacer.check(("rtb", lst.conId, q.exchange, what, rth),
                           (lst.conId, q.exchange, what), 1, now=s.arrived)
    if rule is not None:
        env.stats.violation(rule, s.st.client_id, req_id)
        s.error(req_id, 420, RT_PACING_TEXT)
        return
    s.st.subs[req_id] = Subscription(req_id, lst, set(), "rtb", 5, what, rth,
                                     next_bar=bar_start(env.now()))


@routes(In.CANCEL_REAL_TIME_BARS, "cancelRealTimeBars", req_pos=2)
async def cancel_real_time_bars(env: Quotes, s: Client, fields: list[str]) -> None:
    _cancel(s, Fields(fields, 2).integer(), "rtb")


@routes(In.REQ_TICK_BY_TICK_DATA, "reqTickByTickData", req_pos=1)
async def req_tick_by_tick_data(env: Quotes, s: Client, fields: list[str]) -> None:
    f = Fields(fields, 1)
    req_id = f.integer()
    q = read_contract(f)
    tick_type, _number_of_ticks, ignore_size = f.text(), f.integer(), f.flag()
    if tick_type not in TBT_TYPES:
        s.error(req_id, 321, f"Error validating request.-'bY' : cause - Invalid tick type "
                             f"'{tick_type}'")
        return
    lst = resolve(env, s, req_id, q)
    if lst is None or not _live_ok(env, s, req_id, lst, "tbt"):
        return
    s.st.subs[req_id] = Subscription(req_id, lst, set(), "tbt", what=tick_type,
                                     ignore_size=ignore_size)


@routes(In.CANCEL_TICK_BY_TICK_DATA, "cancelTickByTickData", req_pos=1)
async def cancel_tick_by_tick_data(env: Quotes, s: Client, fields: list[str]) -> None:
    _cancel(s, Fields(fields, 1).integer(), "tbt")


def _cancel(s: Client, req_id: int, kind: str) -> None:
    sub = s.st.subs.get(req_id)
    if sub is not None and sub.kind == kind:
        del s.st.subs[req_id]
