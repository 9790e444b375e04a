"""Builders for outgoing messages, one per message type, gated on the server version.

Every layout mirrors the matching reader in ib_async 2.1.0 ``decoder.py`` (which
ib_insync 0.9.86 shares, with exact-length unpacking in places: execDetails at
176 must not carry the 178 field, so the gates matter).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .protocol import UNSET_DOUBLE, Out
from .state import Execution, Position, SimOrder
from .universe import Listing

Msg = list[Any]


def error(version: int, req_id: int, code: int, text: str) -> Msg:
    msg: Msg = [Out.ERR_MSG, 2, req_id, code, text]
    if version >= 166:
        msg.append("")  # advancedOrderRejectJson
    return msg


def _c11(lst: Listing, exchange: str) -> Msg:
    """conId .. tradingClass as in position/execDetails/openOrder (no primaryExchange)."""
    return [
        lst.conId, lst.symbol, lst.secType, lst.lastTradeDate, lst.strike, lst.right,
        lst.multiplier, exchange, lst.currency, lst.localSymbol, lst.tradingClass,
    ]


def contract_data(
    version: int, req_id: int, lst: Listing, exchange: str, hours: tuple[str, str]
) -> Msg:
    head: Msg = [Out.CONTRACT_DATA]
    if version < 164:
        head.append(8)
    msg = [
        *head, req_id, lst.symbol, lst.secType, lst.lastTradeDate, lst.strike, lst.right,
        exchange, lst.currency, lst.localSymbol, lst.tradingClass, lst.tradingClass,
        lst.conId, lst.minTick,
    ]
    if version < 164:
        msg.append(1)  # mdSizeMultiplier
    msg += [
        lst.multiplier, _order_types(lst), lst.validExchanges, 1, lst.underConId,
        lst.longName, lst.primaryExchange, lst.lastTradeDate[:6] if lst.lastTradeDate else "",
        lst.industry, lst.category, lst.subcategory, lst.timeZoneId, hours[0], hours[1],
        "", "", 0,  # evRule, evMultiplier, no secIds
        1, lst.underSymbol, lst.underSecType, _rules(lst), lst.lastTradeDate, lst.stockType,
    ]
    size_inc = 1
    if version == 163:
        msg.append(size_inc)
    elif version >= 164:
        msg += [size_inc if lst.secType != "STK" else 0.0001, size_inc, size_inc]
    return msg


def _order_types(lst: Listing) -> str:
    if lst.secType == "STK":
        return "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,COND,DAY,GAT,GTC,GTD,LIT,LMT,MIT,MKT,MOC,MTL,OCA,REL,STP,STPLMT,TRAIL,WHATIF"  # noqa: E501
    return "ACTIVETIM,AD,ALERT,ALLOC,COND,DAY,GAT,GTC,GTD,LMT,MKT,OCA,STP,STPLMT,TRAIL,WHATIF"


def _rules(lst: Listing) -> str:
    n = len(lst.validExchanges.split(","))
    return ",".join([lst.marketRuleIds] * n)


def historical_data(
    req_id: int, start: str, end: str, bars: list[tuple[str, Any, Any, Any, Any, Any, Any, int]]
) -> Msg:
    msg: Msg = [Out.HISTORICAL_DATA, req_id, start, end, len(bars)]
    for b in bars:
        msg.extend(b)
    return msg


def tick_price(req_id: int, tick_type: int, price: float, size: float, attrib: int = 0) -> Msg:
    return [Out.TICK_PRICE, 6, req_id, tick_type, price, size, attrib]


def tick_size(req_id: int, tick_type: int, size: float) -> Msg:
    return [Out.TICK_SIZE, 6, req_id, tick_type, size]


def tick_generic(req_id: int, tick_type: int, value: float) -> Msg:
    return [Out.TICK_GENERIC, 6, req_id, tick_type, value]


def tick_string(req_id: int, tick_type: int, value: str) -> Msg:
    return [Out.TICK_STRING, 6, req_id, tick_type, value]


def tick_option(req_id: int, tick_type: int, g: dict[str, float]) -> Msg:
    return [
        Out.TICK_OPTION_COMPUTATION, req_id, tick_type, 0, g["iv"], g["delta"], g["optPrice"],
        g["pvDividend"], g["gamma"], g["vega"], g["theta"], g["undPrice"],
    ]


def order_status(o: SimOrder) -> Msg:
    return [
        Out.ORDER_STATUS, o.orderId, o.status, o.filled, o.remaining, o.avgFillPrice,
        o.permId, 0, o.lastFillPrice, o.clientId, "", 0.0,
    ]


def _px(x: float | None) -> Any:
    return UNSET_DOUBLE if x is None else x


def open_order(version: int, o: SimOrder) -> Msg:
    lst = o.listing
    msg: Msg = [Out.OPEN_ORDER, o.orderId, *_c11(lst, lst.exchange)]
    msg += [
        o.action, o.totalQuantity, o.orderType, _px(o.lmtPrice), _px(o.auxPrice), o.tif,
        "", o.account, "O", 0, o.orderRef, o.clientId, o.permId, o.outsideRth, False, 0.0,
        "", "", "", "", "",
    ]
    if version < 177:
        msg.append("")  # faProfile
    msg += [
        "", "", "", UNSET_DOUBLE, "", 0, "", -1, 0, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE,
        UNSET_DOUBLE, UNSET_DOUBLE, 0, False, False, False, "", 3, False, False, UNSET_DOUBLE,
        0, 0, UNSET_DOUBLE, 0, "", UNSET_DOUBLE,
        # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent,
        # basisPoints, basisPointsType, comboLegsDescrip
        False, 0, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, "", "",
        0, 0, 0,  # combo legs, order combo legs, smart combo routing params
        "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        False, "", "IB", False, False,  # optOutSmartRouting .. deltaNeutralContract present
        "",  # algoStrategy
        False, False, o.status,
        "", "", "", "", "", "", "", "", "",  # margin fields
        UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, "", "",  # commission fields, warning
        False, False,  # randomizeSize, randomizePrice
        0,  # conditions
        "None", UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE,
        UNSET_DOUBLE, 0, "", "", "", UNSET_DOUBLE, False, False, False, False,
    ]
    if version >= 159:
        msg.append(UNSET_DOUBLE)  # duration
    if version >= 160:
        msg.append(UNSET_DOUBLE)  # postToAts
    if version >= 162:
        msg.append(False)  # autoCancelParent
    if version >= 170:
        msg += ["", "", UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE]
    return msg


def completed_order(version: int, o: SimOrder) -> Msg:
    lst = o.listing
    msg: Msg = [Out.COMPLETED_ORDER, *_c11(lst, lst.exchange)]
    msg += [
        o.action, o.totalQuantity, o.orderType, _px(o.lmtPrice), _px(o.auxPrice), o.tif, "",
        o.account, "O", 0, o.orderRef, o.permId, o.outsideRth, False, 0.0, "", "", "", "",
    ]
    if version < 177:
        msg.append("")
    msg += [
        "", "", "", UNSET_DOUBLE, "", 0, "", -1, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE,
        UNSET_DOUBLE, UNSET_DOUBLE, 0, False, False, "", 3, 0, UNSET_DOUBLE, 0, "",
        UNSET_DOUBLE,
        False, 0, UNSET_DOUBLE, UNSET_DOUBLE, "",
        0, 0, 0,
        "", "", "",
        "",
        "", "IB", False, False,
        "",
        False, o.status, False, False,
        0,
        UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, False, False, "", o.filled, 0, False, "",
        False, False, 0, o.completedTime, o.completedStatus,
    ]
    if version >= 170:
        msg += ["", "", UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE]
    return msg


def exec_exchange(lst: Listing) -> str:
    if lst.secType == "STK":
        return {"NASDAQ": "ISLAND"}.get(lst.primaryExchange, lst.primaryExchange)
    if lst.secType == "OPT":
        return "CBOE"
    return lst.exchange


def exec_details(version: int, req_id: int, ex: Execution, tz: str = "US/Eastern") -> Msg:
    o = ex.order
    lst = o.listing
    from zoneinfo import ZoneInfo

    when = ex.time.astimezone(ZoneInfo(tz)).strftime("%Y%m%d %H:%M:%S ") + tz
    msg: Msg = [
        Out.EXECUTION_DATA, req_id, o.orderId, *_c11(lst, exec_exchange(lst)), ex.execId,
        when, o.account, exec_exchange(lst), "BOT" if o.action == "BUY" else "SLD",
        ex.shares, ex.price, o.permId, o.clientId, 0, ex.cumQty, ex.avgPrice, o.orderRef,
        "", "", "", 2,
    ]
    if version >= 178:
        msg.append(False)  # pendingPriceRevision
    return msg


def commission_report(ex: Execution) -> Msg:
    return [
        Out.COMMISSION_REPORT, 1, ex.execId, ex.commission, "USD",
        UNSET_DOUBLE if ex.realizedPNL is None else ex.realizedPNL, UNSET_DOUBLE, "",
    ]


def position(account: str, p: Position) -> Msg:
    lst = p.listing
    return [
        Out.POSITION_DATA, 3, account, *_c11(lst, lst.primaryExchange or lst.exchange),
        p.position, p.avgCost,
    ]


def portfolio_value(account: str, p: Position, mark: float, realized: float) -> Msg:
    lst = p.listing
    mult = float(lst.multiplier or 1)
    value = p.position * mark * mult
    unreal = value - p.position * p.avgCost
    return [
        Out.PORTFOLIO_VALUE, 8, lst.conId, lst.symbol, lst.secType, lst.lastTradeDate,
        lst.strike, lst.right, lst.multiplier, lst.primaryExchange or lst.exchange,
        lst.currency, lst.localSymbol, lst.tradingClass, p.position, mark, round(value, 2),
        p.avgCost, round(unreal, 2), realized, account,
    ]


def account_time(now: dt.datetime) -> Msg:
    return [Out.ACCT_UPDATE_TIME, 1, now.strftime("%H:%M")]
