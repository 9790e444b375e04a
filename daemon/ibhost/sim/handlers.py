"""The simulator's message table: every subject's routes, joined (incoming id -> handler).

Field positions follow ib_async 2.1.0 ``client.py`` (the sender of each request).
"""

from __future__ import annotations

from .account import routes as account_routes
from .connection import routes as connection_routes
from .contracts import routes as contract_routes
from .historical import routes as historical_routes
from .marketdata import routes as marketdata_routes
from .orders import routes as order_routes
from .table import HandlerEntry, join

HANDLERS = join([
    connection_routes, contract_routes, historical_routes, marketdata_routes, order_routes,
    account_routes,
])

__all__ = ["HANDLERS", "HandlerEntry"]
