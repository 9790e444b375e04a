"""What connector.sock's own routes take, declared once (``ibhost.fields``): the
requests only the connector reads (the shared ones are ``ibhost.asks``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..asks import GENERIC_TICKS, ContractSpec, Historical, WithContract
from ..fields import Ask, flag, integer, number, text
from ..fields import int_list as tick_list
from .shapes import SHAPES


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuoteHold(WithContract):
    """A quote subscription held until it is deleted."""

    contract: ContractSpec
    genericTicks: list[int] = tick_list(allowed=GENERIC_TICKS)


# --- live streams -------------------------------------------------------------------------

STREAM_KINDS = ("quote", "bars", "rtbars", "ticks", "pnl")
TICK_TYPES = ("Last", "AllLast", "BidAsk", "MidPoint")


@dataclasses.dataclass(frozen=True, kw_only=True)
class StreamHold(Ask):
    """connector.sock's POST /streams: a channel holds one stream (an IB subscription
    shared by every channel that holds it). The contract is read beside it, except for
    the account's own P&L (kind pnl with no symbol, conId or localSymbol)."""

    channel: str = text(required=True)
    kind: str = text(default="quote", choices=STREAM_KINDS)
    genericTicks: list[int] = tick_list(allowed=GENERIC_TICKS)
    barSize: str = text(default="1 min")
    whatToShow: str = text(default="TRADES", upper=True)
    useRTH: bool = flag(default=False)
    tickType: str = text(default="Last", choices=TICK_TYPES)
    account: str = text(to_ib=True)
    model: str = text(to_ib=True)
    conId: int = integer()

    def account_wide(self, m: Mapping[str, Any]) -> bool:
        return self.kind == "pnl" and not any(m.get(f) for f in ("symbol", "conId",
                                                                 "localSymbol"))

    def params(self) -> dict[str, Any]:
        """What the stream hub takes beside the contract."""
        return {"generic": self.genericTicks, "barSize": self.barSize,
                "whatToShow": self.whatToShow, "useRTH": self.useRTH,
                "tickType": self.tickType, "account": self.account, "model": self.model,
                "conId": self.conId}


@dataclasses.dataclass(frozen=True, kw_only=True)
class StreamOpen(Ask):
    """GET /stream: the channel, after the journalled order events past ``since``."""

    since: int = integer(default=-1, minimum=-1, description="-1: no replay")


@dataclasses.dataclass(frozen=True, kw_only=True)
class StreamRelease(Ask):
    """DELETE /streams/{key}: the channel that lets go of it."""

    channel: str = text()


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderEvents(Ask):
    """GET /order-events: journalled order events after ``since``, oldest first."""

    since: int = integer(default=0)
    limit: int = integer(default=1000, minimum=1, maximum=10_000)
    format: str = text(default="json", choices=("json", "ndjson"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class HistoricalCall(Historical):
    """POST /historical: ibhost's historical request, answered as a JSON body, as
    NDJSON lines (``stream``), or in one family's layout written once (``shape``;
    ``columns: true`` is ``shape: columns``)."""

    shape: str = text(choices=tuple(SHAPES))
    columns: bool = flag(default=False)
    stream: bool = flag(default=False)

    @property
    def layout(self) -> str:
        return self.shape or ("columns" if self.columns else "")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Reconnect(Ask):
    """POST /reconnect: drop and reconnect now, saying why."""

    reason: str = text(default="requested over connector.sock", max_len=200)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderByRef(Ask):
    """GET /orders/by-ref: the order IB knows by this orderRef (and ids, if given)."""

    orderRef: str = text(required=True, max_len=128)
    orderId: int = integer()
    clientId: int = integer(default=-1, description="-1: any client")
    permId: int = integer(maximum=2**63 - 1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PnlQuery(Ask):
    """GET /pnl: the account's P&L (``conId``: one position's)."""

    account: str = text(to_ib=True)
    model: str = text(to_ib=True)
    conId: int = integer()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Freshness(Ask):
    """The query of a read answered from a cache or the connection's state."""

    maxAge: float | None = number(minimum=0, maximum=86400 * 7,
                                  description="seconds: the oldest cached answer taken")
    source: str = text(default="local", choices=("local", "ib"),
                       description="ib: ask IB rather than read the connection's state")


