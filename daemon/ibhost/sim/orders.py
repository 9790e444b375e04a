"""Order handlers: placeOrder, cancelOrder, reqGlobalCancel, open and completed orders,
executions. Orders fill against the simulated quote (``market.py``).

Field positions follow ib_async 2.1.0 ``client.py`` placeOrder.
"""

from __future__ import annotations

from .. import ibrules
from .clientstate import Client
from .contracts import read_contract, resolve
from .env import Book
from .messages import (
    commission_report,
    completed_order,
    exec_details,
    exec_exchange,
    open_order,
    order_status,
)
from .portfolio import publish_portfolio
from .protocol import UNSET_DOUBLE, Fields, In, Out
from .state import SimOrder
from .table import Routes

routes = Routes()


@routes(In.PLACE_ORDER, "placeOrder", req_pos=1)
async def place_order(env: Book, s: Client, fields: list[str]) -> None:
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
    account = f.text() or env.broker.account
    f.text()
    f.text()  # openClose, origin
    order_ref = f.text()
    transmit = f.flag() if f.pos < len(fields) else True
    f.skip(5)  # parentId, blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = f.flag()
    broker = env.broker
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
    lst = resolve(env, s, order_id, q)
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
        s.send(open_order(s.st.version, order))
        s.send(order_status(order))
    evaluate_order(env, s, order)


def _fill_price(env: Book, order: SimOrder) -> float | None:
    q = env.market.quote(order.listing, env.now())
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


def fill_now(env: Book, order: SimOrder) -> None:
    """Fill ``order`` whole at the touch, or at its limit if the touch is beyond it (the
    market came through the limit), with no client told: they learn of it by asking."""
    q = env.market.quote(order.listing, env.now())
    buy = order.action == "BUY"
    price = q.ask if buy else q.bid
    if order.lmtPrice is not None and (price > order.lmtPrice if buy else
                                       price < order.lmtPrice):
        price = order.lmtPrice
    env.broker.fill(order, price, env.now_dt())
    publish_portfolio(env, order.listing.conId)


def evaluate_order(env: Book, s: Client, order: SimOrder) -> None:
    price = _fill_price(env, order)
    if price is None:
        order.status = "PreSubmitted" if order.orderType.startswith("STP") else "Submitted"
        s.send(open_order(s.st.version, order))
        s.send(order_status(order))
        return
    ex = env.broker.fill(order, price, env.now_dt())
    s.send(exec_details(s.st.version, -1, ex))
    s.send(order_status(order))
    s.send(open_order(s.st.version, order))
    s.send(commission_report(ex))
    publish_portfolio(env, order.listing.conId)


@routes(In.CANCEL_ORDER, "cancelOrder", req_pos=2)
async def cancel_order(env: Book, s: Client, fields: list[str]) -> None:
    order_id = Fields(fields, 2).integer()
    order = env.broker.orders.get((s.st.client_id, order_id))
    if order is None:
        s.error(order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found.")
        return
    if not order.is_open:
        s.error(order_id, 10148, f"OrderId {order_id} that needs to be cancelled cannot be "
                                 f"cancelled, state: {order.status}.")
        return
    _cancel(env, s, order)


def _cancel(env: Book, s: Client, order: SimOrder) -> None:
    order.status = "Cancelled"
    order.completedStatus = "Cancelled by Trader"
    order.completedTime = env.now_dt().strftime("%Y%m%d %H:%M:%S UTC")
    s.send(order_status(order))
    s.error(order.orderId, 202, "Order Canceled - reason:")


@routes(In.REQ_GLOBAL_CANCEL, "reqGlobalCancel")
async def req_global_cancel(env: Book, s: Client, fields: list[str]) -> None:
    for order in env.broker.open_orders():
        owner = next((x for x in env.ready_sessions() if x.st.client_id == order.clientId), s)
        _cancel(env, owner, order)


@routes(In.REQ_OPEN_ORDERS, "reqOpenOrders")
async def req_open_orders(env: Book, s: Client, fields: list[str]) -> None:
    for o in env.broker.open_orders(s.st.client_id):
        s.send(open_order(s.st.version, o))
        s.send(order_status(o))
    s.send([Out.OPEN_ORDER_END, 1])


@routes(In.REQ_ALL_OPEN_ORDERS, "reqAllOpenOrders")
async def req_all_open_orders(env: Book, s: Client, fields: list[str]) -> None:
    for o in env.broker.open_orders():
        s.send(open_order(s.st.version, o))
        s.send(order_status(o))
    s.send([Out.OPEN_ORDER_END, 1])


@routes(In.REQ_COMPLETED_ORDERS, "reqCompletedOrders")
async def req_completed_orders(env: Book, s: Client, fields: list[str]) -> None:
    for o in env.broker.completed_orders():
        s.send(completed_order(s.st.version, o))
    s.send([Out.COMPLETED_ORDERS_END])


@routes(In.REQ_EXECUTIONS, "reqExecutions", req_pos=2)
async def req_executions(env: Book, s: Client, fields: list[str]) -> None:
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
    for ex in env.broker.executions:
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
        if exchange and exchange.upper() not in (exec_exchange(o.listing), "SMART"):
            continue
        if side and {"BUY": "BUY", "BOT": "BUY", "SELL": "SELL", "SLD": "SELL"}.get(
                side.upper()) != o.action:
            continue
        s.send(exec_details(s.st.version, req_id, ex))
        s.send(commission_report(ex))
    s.send([Out.EXECUTION_DATA_END, 1, req_id])
