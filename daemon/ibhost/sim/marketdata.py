"""Market-data handlers: reqMktData (streaming and snapshot) and cancelMktData.

The first answer goes out here; the stream that follows is ``feeds.py``'s.
"""

from __future__ import annotations

from .clientstate import Client, Subscription
from .contracts import read_contract, resolve
from .env import Quotes
from .feeds import send_ticks
from .protocol import Fields, In, Out
from .table import Routes

routes = Routes()

NO_SUB_TEXT = {
    354: "Requested market data is not subscribed.Delayed market data is available.",
    10089: "Requested market data requires additional subscription for API. See link in "
           "'Market Data Connections' dialog for more details.Delayed market data is available.",
}
DELAYED_TEXT = "Requested market data is not subscribed. Displaying delayed market data."


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
        s.error(req_id, 10197, "No market data during competing live session")
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
    s.st.subs.pop(Fields(fields, 2).integer(), None)
