"""Connection-level handlers: time, order ids, accounts, market-data type, auto-bind."""

from __future__ import annotations

from .clientstate import Client
from .env import Book, Clock
from .protocol import Fields, In, Out
from .table import Routes

routes = Routes()


@routes(In.REQ_CURRENT_TIME, "reqCurrentTime")
async def req_current_time(env: Clock, s: Client, fields: list[str]) -> None:
    s.send([Out.CURRENT_TIME, 1, int(env.now())])


@routes(In.REQ_IDS, "reqIds")
async def req_ids(env: Book, s: Client, fields: list[str]) -> None:
    s.send([Out.NEXT_VALID_ID, 1, env.broker.next_valid_id(s.st.client_id)])


@routes(In.REQ_MANAGED_ACCTS, "reqManagedAccts")
async def req_managed_accts(env: Book, s: Client, fields: list[str]) -> None:
    s.send([Out.MANAGED_ACCTS, 1, env.broker.account])


@routes(In.REQ_MARKET_DATA_TYPE, "reqMarketDataType")
async def req_market_data_type(env: object, s: Client, fields: list[str]) -> None:
    t = Fields(fields, 2).integer(1)
    if t not in (1, 2, 3, 4):
        s.error(-1, 321, f"Error validating request.-'bQ' : cause - Invalid market data type {t}")
        return
    s.st.md_type = t


@routes(In.REQ_AUTO_OPEN_ORDERS, "reqAutoOpenOrders")
async def req_auto_open_orders(env: object, s: Client, fields: list[str]) -> None:
    if s.st.client_id != 0:
        s.error(-1, 321, "Error validating request.-'bF' : cause - Auto bind is only "
                         "available to client id 0")
