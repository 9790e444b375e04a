"""What one API client has asked for, and the narrow view of a connection handlers use."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from .universe import Listing


@dataclass
class Subscription:
    req_id: int
    listing: Listing
    generic: set[int]
    kind: str = "mkt"  # see KINDS
    bar_size: int = 0
    what: str = ""  # whatToShow (bars), or the tick-by-tick type ("Last", "BidAsk" ...)
    rth: bool = False
    next_bar: int = 0  # real-time bars: start of the next bar to send (epoch seconds)
    last_sent: tuple[float, ...] = ()  # tick-by-tick: the values last sent
    ignore_size: bool = False  # tick-by-tick BidAsk: size-only changes are not sent


# What a live subscription is: reqMktData, keepUpToDate bars, reqRealTimeBars,
# reqTickByTickData. All but keepUpToDate take a market-data line.
KINDS = ("mkt", "bars", "rtb", "tbt")
LINE_KINDS = frozenset({"mkt", "rtb", "tbt"})


@dataclass
class SessionState:
    client_id: int = -1
    version: int = 0
    ready: bool = False
    md_type: int = 1
    positions_sub: bool = False
    account_sub: bool = False
    account_multi: set[int] = field(default_factory=set)
    account_summary: dict[int, tuple[str, ...]] = field(default_factory=dict)
    pnl: set[int] = field(default_factory=set)
    pnl_single: dict[int, int] = field(default_factory=dict)
    open_hist: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    subs: dict[int, Subscription] = field(default_factory=dict)


class Client(Protocol):
    """One API connection as a handler sees it: its state, and a way to answer."""

    st: SessionState
    arrived: float  # when the message being handled arrived (the pacing clock)

    def send(self, fields: list[Any]) -> None: ...

    def error(self, req_id: int, code: int, text: str) -> None: ...
