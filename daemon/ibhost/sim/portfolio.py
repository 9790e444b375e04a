"""What IB pushes when positions or prices change: positions, portfolio values,
account values and summaries, P&L (all to clients subscribed to them).

Layouts follow ib_async 2.1.0 ``decoder.py``: accountSummary ``63,1,reqId,account,tag,
value,currency`` then ``64,1,reqId``; pnl ``94,reqId,daily,unrealized,realized``;
pnlSingle ``95,reqId,pos,daily,unrealized,realized,value``.
"""

from __future__ import annotations

from .clientstate import Client
from .env import Book
from .messages import portfolio_value, position
from .protocol import Out


def publish_portfolio(env: Book, con_id: int) -> None:
    """Push position, portfolio and account changes to subscribed clients."""
    b = env.broker
    pos = b.positions.get(con_id)
    marks = marks_now(env)
    for sess in env.ready_sessions():
        if pos is not None and sess.st.positions_sub:
            sess.send(position(b.account, pos))
        if sess.st.account_sub:
            if pos is not None:
                sess.send(portfolio_value(b.account, pos, marks[con_id], b.realized))
            for k, v, cur in b.account_values(marks):
                sess.send([Out.ACCT_VALUE, 2, k, v, cur, b.account])
        for rid in sess.st.account_multi:
            for k, v, cur in b.account_values(marks):
                sess.send([Out.ACCOUNT_UPDATE_MULTI, 1, rid, b.account, "", k, v, cur])
        for rid in sess.st.account_summary:
            send_summary(env, sess, rid)
        for rid in sess.st.pnl:
            send_pnl(env, sess, rid)
        for rid in sess.st.pnl_single:
            send_pnl_single(env, sess, rid)


def marks_now(env: Book) -> dict[int, float]:
    now = env.now()
    return {c: env.market.quote(p.listing, now).last for c, p in env.broker.positions.items()}


# "$LEDGER" tags come per currency (and BASE), not as plain summary tags
LEDGER = {"CashBalance": "CashBalance", "TotalCashBalance": "CashBalance",
          "RealizedPnL": "RealizedPnL", "UnrealizedPnL": "UnrealizedPnL",
          "NetLiquidationByCurrency": "NetLiquidation"}


def _summary_rows(env: Book, tags: tuple[str, ...]) -> list[tuple[str, str, str]]:
    values = env.broker.account_values(marks_now(env))
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


def send_summary(env: Book, s: Client, req_id: int) -> None:
    for tag, value, cur in _summary_rows(env, s.st.account_summary[req_id]):
        s.send([Out.ACCOUNT_SUMMARY, 1, req_id, env.broker.account, tag, value, cur])
    s.send([Out.ACCOUNT_SUMMARY_END, 1, req_id])


def _pnl(env: Book, con_id: int | None = None) -> tuple[float, float, float, float]:
    """(position, daily, unrealized, value) over all positions or one contract."""
    now = env.now()
    pos_total = daily = unreal = value = 0.0
    for c, p in env.broker.positions.items():
        if con_id is not None and c != con_id:
            continue
        q = env.market.quote(p.listing, now)
        mult = float(p.listing.multiplier or 1)
        pos_total += p.position
        daily += p.position * (q.last - q.close) * mult
        unreal += p.position * q.last * mult - p.position * p.avgCost
        value += p.position * q.last * mult
    return pos_total, round(daily, 2), round(unreal, 2), round(value, 2)


def send_pnl(env: Book, s: Client, req_id: int) -> None:
    _, daily, unreal, _ = _pnl(env)
    s.send([Out.PNL, req_id, daily, unreal, round(env.broker.realized, 2)])


def send_pnl_single(env: Book, s: Client, req_id: int) -> None:
    con_id = s.st.pnl_single[req_id]
    pos, daily, unreal, value = _pnl(env, con_id)
    s.send([Out.PNL_SINGLE, req_id, pos, daily, unreal, 0.0, value])
