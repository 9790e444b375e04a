"""Account handlers: positions, account updates, account summary and P&L subscriptions.

Layouts follow ib_async 2.1.0 ``client.py`` (requests) and ``decoder.py`` (replies):
reqAccountSummary ``62,1,reqId,group,tags``; reqPnL ``92,reqId,account,model``;
reqPnLSingle ``94,reqId,account,model,conId``. IB keeps these subscriptions open and
pushes changes (``portfolio.py``).
"""

from __future__ import annotations

from .clientstate import Client
from .env import Book
from .messages import account_time, portfolio_value, position
from .portfolio import marks_now, send_pnl, send_pnl_single, send_summary
from .protocol import Fields, In, Out
from .table import Routes

routes = Routes()

# IB allows two account-summary subscriptions at a time (error 322 beyond that)
MAX_SUMMARY_SUBS = 2


@routes(In.REQ_POSITIONS, "reqPositions")
async def req_positions(env: Book, s: Client, fields: list[str]) -> None:
    s.st.positions_sub = True
    for p in env.broker.positions.values():
        s.send(position(env.broker.account, p))
    s.send([Out.POSITION_END, 1])


@routes(In.CANCEL_POSITIONS, "cancelPositions")
async def cancel_positions(env: Book, s: Client, fields: list[str]) -> None:
    s.st.positions_sub = False


@routes(In.REQ_ACCT_DATA, "reqAccountUpdates")
async def req_account_updates(env: Book, s: Client, fields: list[str]) -> None:
    f = Fields(fields, 2)
    subscribe, acct = f.flag(), f.text()
    b = env.broker
    if not subscribe:
        s.st.account_sub = False
        return
    if acct and acct != b.account:
        s.error(-1, 321, f"Error validating request.-'bB' : cause - Invalid account '{acct}'")
        return
    s.st.account_sub = True
    marks = marks_now(env)
    for k, v, cur in b.account_values(marks):
        s.send([Out.ACCT_VALUE, 2, k, v, cur, b.account])
    for c, p in b.positions.items():
        s.send(portfolio_value(b.account, p, marks[c], b.realized))
    s.send(account_time(env.now_dt().astimezone(env.tz)))
    s.send([Out.ACCT_DOWNLOAD_END, 1, b.account])


@routes(In.REQ_ACCOUNT_UPDATES_MULTI, "reqAccountUpdatesMulti", req_pos=2)
async def req_account_updates_multi(env: Book, s: Client, fields: list[str]) -> None:
    f = Fields(fields, 2)
    req_id, acct = f.integer(), f.text()
    b = env.broker
    if acct and acct not in (b.account, "All"):
        s.error(req_id, 321, f"Error validating request.-'bB' : cause - Invalid account '{acct}'")
        return
    s.st.account_multi.add(req_id)
    for k, v, cur in b.account_values(marks_now(env)):
        s.send([Out.ACCOUNT_UPDATE_MULTI, 1, req_id, b.account, "", k, v, cur])
    s.send([Out.ACCOUNT_UPDATE_MULTI_END, 1, req_id])


@routes(In.CANCEL_ACCOUNT_UPDATES_MULTI, "cancelAccountUpdatesMulti", req_pos=2)
async def cancel_account_updates_multi(env: Book, s: Client, fields: list[str]) -> None:
    s.st.account_multi.discard(Fields(fields, 2).integer())


def bad_account(env: Book, acct: str) -> bool:
    return bool(acct) and acct not in (env.broker.account, "All")


@routes(In.REQ_ACCOUNT_SUMMARY, "reqAccountSummary", req_pos=2)
async def req_account_summary(env: Book, s: Client, fields: list[str]) -> None:
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
    send_summary(env, s, req_id)


@routes(In.CANCEL_ACCOUNT_SUMMARY, "cancelAccountSummary", req_pos=2)
async def cancel_account_summary(env: Book, s: Client, fields: list[str]) -> None:
    s.st.account_summary.pop(Fields(fields, 2).integer(), None)


@routes(In.REQ_PNL, "reqPnL", req_pos=1)
async def req_pnl(env: Book, s: Client, fields: list[str]) -> None:
    f = Fields(fields, 1)
    req_id, acct = f.integer(), f.text()
    if bad_account(env, acct):
        s.error(req_id, 321, f"Error validating request.-'bT' : cause - Invalid account "
                             f"'{acct[:40]}'")
        return
    s.st.pnl.add(req_id)
    send_pnl(env, s, req_id)


@routes(In.CANCEL_PNL, "cancelPnL", req_pos=1)
async def cancel_pnl(env: Book, s: Client, fields: list[str]) -> None:
    s.st.pnl.discard(Fields(fields, 1).integer())


@routes(In.REQ_PNL_SINGLE, "reqPnLSingle", req_pos=1)
async def req_pnl_single(env: Book, s: Client, fields: list[str]) -> None:
    f = Fields(fields, 1)
    req_id, acct, _model, con_id = f.integer(), f.text(), f.text(), f.integer()
    if bad_account(env, acct):
        s.error(req_id, 321, f"Error validating request.-'bT' : cause - Invalid account "
                             f"'{acct[:40]}'")
        return
    s.st.pnl_single[req_id] = con_id
    send_pnl_single(env, s, req_id)


@routes(In.CANCEL_PNL_SINGLE, "cancelPnLSingle", req_pos=1)
async def cancel_pnl_single(env: Book, s: Client, fields: list[str]) -> None:
    s.st.pnl_single.pop(Fields(fields, 1).integer(), None)
