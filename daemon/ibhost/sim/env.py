"""What handlers and feeds may use of the simulator, one small protocol per subject.

Handlers are written against these, never against ``Simulator`` itself (as aiohttp
hands a handler a ``Request``, not the server); ``Simulator`` satisfies all of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol
from zoneinfo import ZoneInfo

from .clientstate import Client
from .market import Market
from .pacing import HistoricalPacer, SoftThrottle
from .state import Broker
from .stats import Stats
from .universe import Universe


class Clock(Protocol):
    """The simulated wall clock (it may be shifted from this machine's)."""

    tz: ZoneInfo

    def now(self) -> float: ...

    def now_dt(self) -> dt.datetime: ...


class Contracts(Protocol):
    universe: Universe


class Prices(Clock, Contracts, Protocol):
    market: Market


class Book(Prices, Protocol):
    """Orders, fills, positions and the clients to push their changes to."""

    broker: Broker

    def ready_sessions(self) -> Sequence[Client]: ...


class Hmds(Prices, Protocol):
    """The historical data service: pacing rules and their faults."""

    stats: Stats
    pacer: HistoricalPacer
    throttle: SoftThrottle
    pacing_mode: str
    forced_pacing: int
    no_subscription: dict[str, int]

    async def unfrozen(self) -> None: ...


class Quotes(Prices, Protocol):
    """The market-data farm: subscriptions, entitlements and its faults."""

    stats: Stats
    pacer: HistoricalPacer  # real-time bars follow the small-bar pacing rules
    competing_session: bool
    no_subscription: dict[str, int]
    farms: dict[str, bool]
    max_lines: int  # the user's market-data lines, shared by every API client

    def ready_sessions(self) -> Sequence[Client]: ...


class Streams(Quotes, Protocol):
    """What the live feeds need: who is listening, and whether IB is reachable."""

    tick_interval: float
    bar_update_interval: float
    connectivity: str

    @property
    def frozen(self) -> bool: ...


class Gateway(Book, Hmds, Quotes, Protocol):
    """Everything the message table's handlers may use, together."""
