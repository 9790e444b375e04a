"""What KTRDR's and the wheel-strat bridge's clients ask, declared once (``fields``):
their gateway paths read these, and the OpenAPI document states them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from . import ibrules
from .asks import BAR_SIZES, CON_ID, DURATION, duration_problem, symbol
from .errors import bad_request
from .fields import Ask, Text, flag, integer, number, text, when
from .schema_rules import bridge_historical_rules, given, one_of, order_rules
from .symbols import INSTRUMENT_TYPES

# the timeframes KTRDR's provider accepts (IbDataProvider._validate_timeframe)
KTRDR_TIMEFRAMES = ("1m", "5m", "15m", "30m", "1h", "2h", "3h", "4h", "1d", "1w", "1M")


def _instrument_type(s: str) -> str | None:
    return None if s.upper() in INSTRUMENT_TYPES else (
        f"must be one of {', '.join(sorted(INSTRUMENT_TYPES))}")


def instrument_type() -> Any:
    """KTRDR's optional instrument_type (stock, forex, future, ...; any case)."""
    return text(check=_instrument_type, doc={"type": "string",
                                             "enum": sorted(INSTRUMENT_TYPES)})


@dataclasses.dataclass(frozen=True, kw_only=True)
class KtrdrHistorical(Ask):
    """KTRDR's POST /data/historical: bars of a symbol it classifies itself, start and
    end inclusive."""

    symbol: str = symbol()
    timeframe: str = text(required=True, max_len=8, choices=KTRDR_TIMEFRAMES)
    start: dt.datetime | None = when(required=True)
    end: dt.datetime | None = when(required=True)
    instrument_type: str = instrument_type()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Timeframes(Text):
    """KTRDR's list of timeframe names: up to 20 strings of up to 8 characters."""

    def read(self, m: Mapping[str, Any], name: str, *, query: bool = False) -> Any:
        tfs = m.get(name)
        if tfs is None:
            return []
        if not isinstance(tfs, list) or len(tfs) > 20 or \
                not all(isinstance(t, str) and len(t) <= 8 for t in tfs):
            raise bad_request(name, "must be a list of up to 20 timeframe strings")
        return tfs

    def base_schema(self, query: bool) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 20}


@dataclasses.dataclass(frozen=True, kw_only=True)
class KtrdrValidate(Ask):
    """KTRDR's POST /data/validate: a symbol, and the timeframes to give head
    timestamps for."""

    symbol: str = symbol()
    timeframes: list[str] = dataclasses.field(default_factory=list,
                                              metadata={"field": Timeframes()})


@dataclasses.dataclass(frozen=True, kw_only=True)
class KtrdrHeadTimestamp(Ask):
    """KTRDR's GET /data/head-timestamp."""

    symbol: str = symbol()
    timeframe: str = text(required=True, max_len=8)
    instrument_type: str = instrument_type()


ID = {"type": "integer", "minimum": 1, "maximum": 2147483647}


@dataclasses.dataclass(frozen=True, kw_only=True)
class BridgeCancel(Ask):
    """The bridge's POST /order/cancel: by orderId, or by permId."""

    orderId: int = integer(description="0 or null: not given")
    permId: int = integer(description="0 or null: not given")

    RULES: ClassVar[tuple[dict[str, Any], ...]] = ({"anyOf": [
        {"required": ["orderId"], "properties": {"orderId": ID}},
        {"required": ["permId"], "properties": {"permId": ID}}]},)

    def check(self) -> None:
        if not self.orderId and not self.permId:
            raise bad_request("orderId", "give orderId or permId")


@dataclasses.dataclass(frozen=True, kw_only=True)
class BridgeExecutions(Ask):
    """The bridge's GET /executions: the last lookbackDays days (by IB's clock), and
    since a time when given (the later bound wins)."""

    lookbackDays: float = number(default=7.0, minimum=0, maximum=3650)
    since: str = text(max_len=40, doc={"type": "string", "format": "date-time"},
                      description="ISO 8601; before 1970: everything")


# --- the wheel-strat bridge ---------------------------------------------------------------

EXPIRATION = {"type": "string", "pattern": "^[0-9]{4}-?[0-9]{2}-?[0-9]{2}$",
              "example": "20261218"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Expiration(Text):
    """An option's expiration as the bridge took it: YYYYMMDD or YYYY-MM-DD (also given
    as lastTradeDateOrContractMonth)."""

    def read(self, m: Mapping[str, Any], name: str, *, query: bool = False) -> str:
        raw = m.get(name)
        if raw in (None, ""):
            raw = m.get("lastTradeDateOrContractMonth")
        if raw in (None, ""):
            if self.required:
                raise bad_request(name, "is required for an option (YYYYMMDD)")
            return ""
        text = raw.replace("-", "") if isinstance(raw, str) else ""
        if not (text.isascii() and text.isdigit() and len(text) == 8):
            raise bad_request(name, "must be a date like 20261218 or 2026-12-18")
        return text

    def base_schema(self, query: bool) -> dict[str, Any]:
        return dict(EXPIRATION) if self.required else {
            "anyOf": [EXPIRATION, {"const": ""}]}


def expiration(**kw: Any) -> Any:
    return dataclasses.field(default="", metadata={"field": Expiration(**kw)})


@dataclasses.dataclass(frozen=True, kw_only=True)
class BridgeOption(Ask):
    """An option as the bridge's callers name it (POST /option-quote, its batch items,
    and an option order or history)."""

    symbol: str = symbol(upper=True)
    expiration: str = expiration(required=True)
    strike: float | None = number(required=True, positive=True, below=1e9)
    right: str = text(required=True, upper=True, choices=("C", "P"), lower_too=True)
    exchange: str = text(default="SMART", to_ib=True)
    currency: str = text(default="USD", to_ib=True)
    conId: int = integer(minimum=1, doc=CON_ID)

    def spec(self, m: Mapping[str, Any], *, for_order: bool = False) -> dict[str, Any]:
        """The contract as connector.sock takes it (an order goes to SMART)."""
        spec: dict[str, Any] = {
            "symbol": self.symbol, "secType": "OPT",
            "lastTradeDateOrContractMonth": self.expiration, "strike": self.strike,
            "right": self.right, "exchange": "SMART" if for_order else self.exchange,
            "currency": self.currency}
        for k in ("tradingClass", "multiplier"):  # passed on as the bridge did
            if m.get(k):
                spec[k] = str(m[k])
        if self.conId:
            spec["conId"] = self.conId
        return spec


def bridge_option(m: Mapping[str, Any], *, for_order: bool = False) -> dict[str, Any]:
    return BridgeOption.read(m).spec(m, for_order=for_order)


def _ib_end_problem(s: str) -> str | None:
    try:
        ibrules.parse_end_datetime(s)
    except (ValueError, KeyError):
        return "must be IB's 'yyyymmdd hh:mm:ss [TZ]' or ''"
    return None


BRIDGE_BAR = "1 day"  # the bridge's defaults when a field is left out
BRIDGE_DURATION = "1 M"
OPTION = ("OPT", "OPTION")


@dataclasses.dataclass(frozen=True, kw_only=True)
class BridgeHistorical(Ask):
    """The bridge's POST /historical: a stock by symbol (or an option by its fields,
    with secType OPT), IB's bar size and duration (1 day over 1 M by default)."""

    symbol: str = symbol(upper=True)
    secType: str = text(upper=True, hidden=True)  # also spelt sectype; OPT: an option
    barSize: str = text(default=BRIDGE_BAR, doc={"type": "string", "enum": BAR_SIZES})
    duration: str = text(default=BRIDGE_DURATION, check=duration_problem,
                         doc={"anyOf": [DURATION, {"const": ""}]})
    whatToShow: str = text(default="TRADES", upper=True,
                           doc={"type": "string", "enum": ["TRADES", "MIDPOINT"]})
    useRTH: bool = flag(default=True)
    endDateTime: str = text(max_len=40, check=_ib_end_problem,
                            doc={"type": "string", "enum": [""]},
                            description="IB's 'yyyymmdd hh:mm:ss [TZ]'; '' for now")

    RULES: ClassVar[tuple[dict[str, Any], ...]] = tuple(bridge_historical_rules())

    @property
    def is_option(self) -> bool:
        return self.secType in OPTION

    @classmethod
    def read(cls, m: Mapping[str, Any], *, query: bool = False) -> Self:
        if not (m.get("secType") or "") and m.get("sectype"):
            m = {**m, "secType": m["sectype"]}
        return super().read(m, query=query)


BRIDGE_ORDER_TYPES = ("LMT", "MKT")  # anything else was a market order at the bridge


@dataclasses.dataclass(frozen=True, kw_only=True)
class BridgeOrder(Ask):
    """The bridge's POST /order: a stock, or an option named in full; LMT (default) or
    MKT; ``uid`` is the user, carried to IB as the order's orderRef."""

    symbol: str = symbol(upper=True)
    secType: str = text(default="STK", upper=True, choices=("STK", "OPT"))
    action: str = text(required=True, upper=True, choices=("BUY", "SELL"))
    quantity: float | None = number(required=True, minimum=1e-4, maximum=1e9)
    orderType: str = text(default="LMT", upper=True, choices=BRIDGE_ORDER_TYPES)
    limitPrice: float | None = number(positive=True, maximum=1e9)
    uid: str = text(max_len=128, to_ib=True)
    # an option's fields: checked when given for a stock, required for an option
    expiration: str = expiration()
    strike: float | None = number(minimum=0, below=1e9)
    right: str = text(upper=True, choices=("C", "P"), lower_too=True)

    # an option order names its contract in full; a LMT order has its price
    RULES: ClassVar[tuple[dict[str, Any], ...]] = (
        *order_rules(["MKT", "LMT"], "LMT", needs_limit=("LMT",)),
        {"anyOf": [one_of("secType", ["STK"]), {"allOf": [
            given("expiration", {"type": "string", "minLength": 1}),
            given("right", {"type": "string"}),
            given("strike", {"type": "number", "exclusiveMinimum": 0})]}]})

    def check(self) -> None:
        if self.orderType == "LMT" and self.limitPrice is None:
            raise bad_request("limitPrice", "is required for LMT orders")

    def order(self, m: Mapping[str, Any]) -> dict[str, Any]:
        """The order as ibhost's order pipeline takes it (orders.fields reads it again)."""
        contract = bridge_option(m, for_order=True) if self.secType == "OPT" else {
            "symbol": self.symbol, "secType": "STK", "exchange": "SMART", "currency": "USD"}
        return {**contract, "action": self.action, "quantity": self.quantity,
                "orderType": self.orderType, "orderRef": self.uid or "anon",
                "dedupe": False,  # the bridge placed every order it was sent
                "limitPrice": self.limitPrice if self.orderType == "LMT" else None}
