"""Account handlers: positions, account updates, account summary and PnL subscriptions.

Layouts follow ib_async 2.1.0 ``client.py`` (requests) and ``decoder.py`` (replies):
reqAccountSummary ``62,1,reqId,group,tags`` -> ``63,1,reqId,account,tag,value,currency``
then ``64,1,reqId``; reqPnL ``92,reqId,account,model`` -> ``94,reqId,daily,unrealized,
realized``; reqPnLSingle ``94,reqId,account,model,conId`` -> ``95,reqId,pos,daily,
unrealized,realized,value``. IB keeps these subscriptions open and pushes changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import messages as m
from .protocol import Fields, In, Out
from .session import Session
from .table import handles

if TYPE_CHECKING:
    from .server import Simulator

# IB allows two account-summary subscriptions at a time (error 322 beyond that)
MAX_SUMMARY_SUBS = 2


def publish_portfolio(sim: Simulator, con_id: int) -> None:
    """Push position, portfolio and account changes to subscribed clients."""
    b = sim.broker
    pos = b.positions.get(con_id)
    marks = _marks(sim)
    for sess in sim.ready_sessions():
        if pos is not None and sess.st.positions_sub:
            sess.send(m.position(b.account, pos))
        if sess.st.account_sub:
            if pos is not None:
                sess.send(m.portfolio_value(b.account, pos, marks[con_id], b.realized))
            for k, v, cur in b.account_values(marks):
                sess.send([Out.ACCT_VALUE, 2, k, v, cur, b.account])
        for rid in sess.st.account_multi:
            for k, v, cur in b.account_values(marks):
                sess.send([Out.ACCOUNT_UPDATE_MULTI, 1, rid, b.account, "", k, v, cur])
        for rid in sess.st.account_summary:
            send_summary(sim, sess, rid)
        for rid in sess.st.pnl:
            send_pnl(sim, sess, rid)
        for rid in sess.st.pnl_single:
            send_pnl_single(sim, sess, rid)


@handles(In.REQ_POSITIONS, "reqPositions")
async def req_positions(sim: Simulator, s: Session, fields: list[str]) -> None:
    s.st.positions_sub = True
    for p in sim.broker.positions.values():
        s.send(m.position(sim.broker.account, p))
    s.send([Out.POSITION_END, 1])


@handles(In.CANCEL_POSITIONS, "cancelPositions")
async def cancel_positions(sim: Simulator, s: Session, fields: list[str]) -> None:
    s.st.positions_sub = False


def _marks(sim: Simulator) -> dict[int, float]:
    now = sim.now()
    return {c: sim.market.quote(p.listing, now).last for c, p in sim.broker.positions.items()}


@handles(In.REQ_ACCT_DATA, "reqAccountUpdates")
async def req_account_updates(sim: Simulator, s: Session, fields: list[str]) -> None:
    f = Fields(fields, 2)
    subscribe, acct = f.flag(), f.text()
    b = sim.broker
    if not subscribe:
        s.st.account_sub = False
        return
    if acct and acct != b.account:
        s.error(-1, 321, f"Error validating request.-'bB' : cause - Invalid account '{acct}'")
        return
    s.st.account_sub = True
    marks = _marks(sim)
    for k, v, cur in b.account_values(marks):
        s.send([Out.ACCT_VALUE, 2, k, v, cur, b.account])
    for c, p in b.positions.items():
        s.send(m.portfolio_value(b.account, p, marks[c], b.realized))
    s.send(m.account_time(sim.now_dt().astimezone(sim.tz)))
    s.send([Out.ACCT_DOWNLOAD_END, 1, b.account])


@handles(In.REQ_ACCOUNT_UPDATES_MULTI, "reqAccountUpdatesMulti", req_pos=2)
async def req_account_updates_multi(sim: Simulator, s: Session, fields: list[str]) -> None:
    f = Fields(fields, 2)
    req_id, acct = f.integer(), f.text()
    b = sim.broker
    if acct and acct not in (b.account, "All"):
        s.error(req_id, 321, f"Error validating request.-'bB' : cause - Invalid account '{acct}'")
        return
    s.st.account_multi.add(req_id)
    for k, v, cur in b.account_values(_marks(sim)):
        s.send([Out.ACCOUNT_UPDATE_MULTI, 1, req_id, b.account, "", k, v, cur])
    s.send([Out.ACCOUNT_UPDATE_MULTI_END, 1, req_id])


@handles(In.CANCEL_ACCOUNT_UPDATES_MULTI, "cancelAccountUpdatesMulti", req_pos=2)
async def cancel_account_updates_multi(sim: Simulator, s: Session, fields: list[str]) -> None:
    s.st.account_multi.discard(Fields(fields, 2).integer())


def _bad_account(sim: Simulator, acct: str) -> bool:
    return bool(acct) and acct not in (sim.broker.account, "All")


# "$LEDGER" tags come per currency (and BASE), not as plain summary tags
LEDGER = {"CashBalance": "CashBalance", "TotalCashBalance": "CashBalance",
          "RealizedPnL": "RealizedPnL", "UnrealizedPnL": "UnrealizedPnL",
          "NetLiquidationByCurrency": "NetLiquidation"}


def _summary_rows(sim: Simulator, tags: tuple[str, ...]) -> list[tuple[str, str, str]]:
    values = sim.broker.account_values(_marks(sim))
    plain = [v for v in values if v[0] not in ("CashBalance", "RealizedPnL", "UnrealizedPnL",
                                               "AccountCode", "Currency")]
    rows = [v for v in plain if v[0] in tags]
    if any(t.startswith("$LEDGER") for t in tags):
        by_key = {k: val for k, val, _ in values}
        currencies = ("BASE", "USD") if "$LEDGER:ALL" in tags else ("BASE",)
        for cur in currencies:
            rows += [(tag, by_key[src], cur) for tag, src in LEDGER.items()]
            rows.append(("ExchangeRate", "1.00", cur))
    return rows


def send_summary(sim: Simulator, s: Session, req_id: int) -> None:
    for tag, value, cur in _summary_rows(sim, s.st.account_summary[req_id]):
        s.send([Out.ACCOUNT_SUMMARY, 1, req_id, sim.broker.account, tag, value, cur])
    s.send([Out.ACCOUNT_SUMMARY_END, 1, req_id])


@handles(In.REQ_ACCOUNT_SUMMARY, "reqAccountSummary", req_pos=2)
async def req_account_summary(sim: Simulator, s: Session, fields: list[str]) -> None:
    f = Fields(fields, 2)
    req_id, group, tags = f.integer(), f.text(), f.text()
    if len(s.st.account_summary) >= MAX_SUMMARY_SUBS:
        s.error(req_id, 322, "Error processing request.-'bA' : cause - Maximum number of "
                             "account summary requests exceeded")
        return
    if group != "All":
        s.error(req_id, 321, f"Error validating request.-'bA' : cause - Invalid group "
                             f"'{group[:40]}'")
        return
    s.st.account_summary[req_id] = tuple(t.strip() for t in tags.split(",") if t.strip())
    send_summary(sim, s, req_id)


@handles(In.CANCEL_ACCOUNT_SUMMARY, "cancelAccountSummary", req_pos=2)
async def cancel_account_summary(sim: Simulator, s: Session, fields: list[str]) -> None:
    s.st.account_summary.pop(Fields(fields, 2).integer(), None)


def _pnl(sim: Simulator, con_id: int | None = None) -> tuple[float, float, float, float]:
    """(position, daily, unrealized, value) over all positions or one contract."""
    now = sim.now()
    pos_total = daily = unreal = value = 0.0
    for c, p in sim.broker.positions.items():
        if con_id is not None and c != con_id:
            continue
        q = sim.market.quote(p.listing, now)
        mult = float(p.listing.multiplier or 1)
        pos_total += p.position
        daily += p.position * (q.last - q.close) * mult
        unreal += p.position * q.last * mult - p.position * p.avgCost
        value += p.position * q.last * mult
    return pos_total, round(daily, 2), round(unreal, 2), round(value, 2)


def send_pnl(sim: Simulator, s: Session, req_id: int) -> None:
    _, daily, unreal, _ = _pnl(sim)
    s.send([Out.PNL, req_id, daily, unreal, round(sim.broker.realized, 2)])


def send_pnl_single(sim: Simulator, s: Session, req_id: int) -> None:
    con_id = s.st.pnl_single[req_id]
    pos, daily, unreal, value = _pnl(sim, con_id)
    s.send([Out.PNL_SINGLE, req_id, pos, daily, unreal, 0.0, value])


@handles(In.REQ_PNL, "reqPnL", req_pos=1)
async def req_pnl(sim: Simulator, s: Session, fields: list[str]) -> None:
    f = Fields(fields, 1)
    req_id, acct = f.integer(), f.text()
    if _bad_account(sim, acct):
        s.error(req_id, 321, f"Error validating request.-'bT' : cause - Invalid account "
                             f"'{acct[:40]}'")
        return
    s.st.pnl.add(req_id)
    send_pnl(sim, s, req_id)


@handles(In.CANCEL_PNL, "cancelPnL", req_pos=1)
async def cancel_pnl(sim: Simulator, s: Session, fields: list[str]) -> None:
    s.st.pnl.discard(Fields(fields, 1).integer())


@handles(In.REQ_PNL_SINGLE, "reqPnLSingle", req_pos=1)
async def req_pnl_single(sim: Simulator, s: Session, fields: list[str]) -> None:
    f = Fields(fields, 1)
    req_id, acct, _model, con_id = f.integer(), f.text(), f.text(), f.integer()
    if _bad_account(sim, acct):
        s.error(req_id, 321, f"Error validating request.-'bT' : cause - Invalid account "
                             f"'{acct[:40]}'")
        return
    s.st.pnl_single[req_id] = con_id
    send_pnl_single(sim, s, req_id)


@handles(In.CANCEL_PNL_SINGLE, "cancelPnLSingle", req_pos=1)
async def cancel_pnl_single(sim: Simulator, s: Session, fields: list[str]) -> None:
    s.st.pnl_single.pop(Fields(fields, 1).integer(), None)
