"""What a caller asks, declared once (``fields``): the contract, a historical request and
an order. The gateway reads /v1/'s bodies with them, the connector reads
connector.sock's, and the OpenAPI document states them from the same declarations,
so a rule changes in one place."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from . import ibrules
from .errors import bad_request
from .fields import Ask, integer, null, number, text, when
from .fields import flag as flag_field
from .fields import int_list as tick_list
from .schema_rules import any_duration_pattern, historical_rules, order_rules
from .validate import symbol_ok

SEC_TYPES = ("STK", "OPT", "FUT", "CASH", "IND", "FOP", "CFD", "BOND", "FUND", "CRYPTO")
DEFAULT_EXCHANGE = {"CASH": "IDEALPRO", "FUT": "", "IND": ""}
# what the gateway takes: symbols are ASCII letters, digits and . - / (and inner spaces)
SYMBOL = {"type": "string", "minLength": 1, "maxLength": 64,
          "pattern": "^[A-Za-z0-9][A-Za-z0-9./-]*( [A-Za-z0-9./-]+)*$", "example": "AAPL"}
EXPIRY = r"[0-9]{6}|[0-9]{8}"
MULTIPLIER = r"[0-9]{1,9}(\.[0-9]{1,6})?"
RIGHTS = ("C", "P", "CALL", "PUT")
CON_ID = {"type": "integer", "minimum": 1, "maximum": 2147483647}
TEXT = {"type": "string", "maxLength": 64, "pattern": "^[ -~]*$"}  # printable ASCII


def _symbol_problem(s: str) -> str | None:
    return None if symbol_ok(s) else "has characters a symbol cannot contain"


def symbol(**kw: Any) -> Any:
    """A symbol as the gateway takes one: ASCII letters and digits first, then those
    and . - / and inner spaces."""
    return text(required=True, to_ib=True, check=_symbol_problem, doc=SYMBOL, **kw)


def _ib_text(**kw: Any) -> Any:
    """A contract field as IB takes it: printable ASCII, "" kept as given."""
    return text(to_ib=True, keep_empty=True, **kw)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContractSpec(Ask):
    """A contract as a caller names it: by symbol, conId or localSymbol, the rest
    narrowing it down. Numbers are JSON numbers in a body, text in a query string."""

    symbol: str = _ib_text(upper=True, check=_symbol_problem,
                           doc={"anyOf": [SYMBOL, {"const": ""}]})
    secType: str = text(default="STK", upper=True, choices=SEC_TYPES, to_ib=True)
    exchange: str = _ib_text(default="SMART", upper=True)
    currency: str = _ib_text(default="USD", upper=True, description='"" for any')
    primaryExchange: str = _ib_text(upper=True)
    lastTradeDateOrContractMonth: str = _ib_text(
        pattern=EXPIRY, pattern_error="must be YYYYMM or YYYYMMDD", description="YYYYMM[DD]")
    strike: float = number(default=0.0, minimum=0, below=1e9, json_only=True)
    right: str = _ib_text(upper=True, choices=("", *RIGHTS), lower_too=True,
                          description="C or P")
    multiplier: str = _ib_text(pattern=MULTIPLIER,
                               pattern_error="must be a number like 100 or 0.1")
    localSymbol: str = _ib_text()
    tradingClass: str = _ib_text()
    conId: int = integer(default=0, json_only=True)

    # fields read for the contract but not part of it
    ALIASES: ClassVar[dict[str, Any]] = {
        "expiry": text(to_ib=True, keep_empty=True, pattern=EXPIRY,
                       pattern_error="must be YYYYMM or YYYYMMDD",
                       description="alias of lastTradeDateOrContractMonth")}
    # one of symbol, conId or localSymbol names the contract
    RULES: ClassVar[tuple[dict[str, Any], ...]] = ({"anyOf": [
        {"required": ["symbol"], "properties": {"symbol": SYMBOL}},
        {"required": ["conId"], "properties": {"conId": CON_ID}},
        {"required": ["localSymbol"],
         "properties": {"localSymbol": {**TEXT, "pattern": "^ *[!-~][ -~]*$"}}}]},)

    @classmethod
    def read(cls, m: Mapping[str, Any], *, query: bool = False) -> Self:
        f = cls.declared()
        v = {name: field.read(m, name, query=query) for name, field in f.items()}
        if "exchange" not in m or m["exchange"] is None:  # the default by secType
            v["exchange"] = DEFAULT_EXCHANGE.get(v["secType"], "SMART")
        expiry = cls.ALIASES["expiry"].metadata["field"].read(m, "expiry")  # checked, given
        v["lastTradeDateOrContractMonth"] = v["lastTradeDateOrContractMonth"] or expiry
        if not v["symbol"] and not v["conId"] and not v["localSymbol"]:
            raise bad_request("symbol", "is required (or conId / localSymbol)")
        if v["secType"] == "CASH" and "." in v["symbol"] and "currency" not in m:
            v["symbol"], _, v["currency"] = v["symbol"].partition(".")
        v["right"] = v["right"][:1]
        return cls(**v)

    @classmethod
    def properties(cls, query: bool = False) -> dict[str, dict[str, Any]]:
        out = super().properties(query)
        for name, d in cls.ALIASES.items():
            schema = d.metadata["field"].schema(query)
            out[name] = schema if query else null(schema)
        return out

    def key(self) -> tuple[Any, ...]:
        """The fields' values in order, as ``dataclasses.astuple`` gives them without
        its deep copy of each (every value is a str, int or float): a contract is
        looked up by it two or three times a request, 2 us each instead of 28."""
        return tuple([getattr(self, name) for name in self.declared()])


def parse_spec(body: Mapping[str, Any], *, query: bool = False) -> ContractSpec:
    """The contract a JSON body (numbers are JSON numbers) or a query string (``query``:
    numbers come as text) names."""
    return ContractSpec.read(body, query=query)


# the fields a contract is read from: its own and its aliases
CONTRACT_NAMES = (*ContractSpec.declared(), *ContractSpec.ALIASES)
PRIORITIES = ("interactive", "background")
BAR_SIZES = (*ibrules.BAR_SIZES, *ibrules.BAR_ALIASES)
# IB's durations within its limits (ibrules.MAX_DURATION); which of them a bar size
# takes, a request's rules say (schema_rules)
DURATION = {"type": "string", "example": "2 D", "pattern": any_duration_pattern()}
DURATION_HELP = ("must look like '3 D' (units S, D, W, M, Y; at most 86400 S, 365 D, "
                 "52 W, 12 M, 50 Y)")


def duration_problem(s: str) -> str | None:
    return None if ibrules.parse_duration(s) is not None else DURATION_HELP


QUERY_CONTRACT = ("symbol", "secType", "exchange", "currency")  # what a query documents


class WithContract(Ask):
    """A request about one contract: its fields beside the request's own."""

    contract: ContractSpec
    NAMED: ClassVar[tuple[dict[str, Any], ...]] = ContractSpec.RULES  # how it is named

    @classmethod
    def parts(cls, m: Mapping[str, Any], query: bool) -> dict[str, Any]:
        return {"contract": ContractSpec.read(m, query=query)}

    @classmethod
    def properties(cls, query: bool = False) -> dict[str, dict[str, Any]]:
        return {**ContractSpec.properties(query), **super().properties(query)}

    @classmethod
    def schema(cls) -> dict[str, Any]:
        out = super().schema()
        out["allOf"] = [*cls.NAMED, *out.get("allOf", ())]
        return out

    @classmethod
    def parameters(cls) -> list[dict[str, Any]]:
        """As query parameters: the contract by symbol (conId and the other fields work
        too, but a query cannot say "one of them"), then the request's own."""
        props = ContractSpec.properties(query=True)
        props["symbol"] = SYMBOL
        return [{"name": n, "in": "query", "required": n == "symbol", "schema": props[n]}
                for n in QUERY_CONTRACT] + super().parameters()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Historical(WithContract):
    """Bars of one contract: a bar size, and a range (start, optional end) or one IB
    duration ending at end (default now)."""

    contract: ContractSpec
    barSize: str = text(choices=BAR_SIZES,
                        description="IB's bar size; give this or timeframe")
    timeframe: str = text(choices=tuple(sorted(ibrules.TIMEFRAMES)),
                          description="alternative to barSize: 1s 5s … 1m 5m 15m 30m "
                                      "1h 4h 1d 1w 1M")
    start: dt.datetime | None = when()
    end: dt.datetime | None = when(description="exclusive; default now")
    duration: str = text(check=duration_problem, doc=DURATION,
        description="instead of start: one IB request (at most 86400 S, 365 D, 52 W, "
                    "12 M, 50 Y; IB's step-size rules apply)")
    whatToShow: str = text(upper=True, choices=ibrules.WHAT_TO_SHOW,
                           description="default TRADES (MIDPOINT for CASH and CFD)")
    useRTH: bool = flag_field(default=True)
    priority: str = text(default="interactive", choices=PRIORITIES)

    RULES: ClassVar[tuple[dict[str, Any], ...]] = tuple(historical_rules(list(SEC_TYPES)))

    @property
    def bar_size(self) -> str:
        """barSize, or the one timeframe names."""
        return self.barSize or ibrules.TIMEFRAMES.get(self.timeframe, "")

    def check(self) -> None:
        if self.barSize and self.timeframe and ibrules.bar_seconds(
                self.barSize) != ibrules.bar_seconds(ibrules.TIMEFRAMES[self.timeframe]):
            raise bad_request("timeframe", f"{self.timeframe} conflicts with barSize "
                                           f"{self.barSize}; give one of them")
        if not self.bar_size:
            raise bad_request("barSize", "is required (or timeframe, e.g. 1h)")
        if self.duration and self.start:
            raise bad_request("duration", "give either duration or start, not both")
        if self.start and self.end and self.start >= self.end:
            raise bad_request("start", "must be before end")

    def body(self) -> dict[str, Any]:
        """The request as connector.sock takes it (JSON: times as ISO text)."""
        out: dict[str, Any] = {**self.contract.given(), "barSize": self.bar_size}
        for name in ("start", "end"):
            t = getattr(self, name)
            if t is not None:
                out[name] = t.isoformat()
        for name in ("duration", "whatToShow"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        out["useRTH"] = self.useRTH
        out["priority"] = self.priority
        return out


ORDER_TYPES = ("MKT", "LMT", "STP", "STP LMT")
TIFS = ("DAY", "GTC", "IOC", "OPG", "GTD", "FOK")
NEEDS_LIMIT = ("LMT", "STP LMT")
NEEDS_STOP = ("STP", "STP LMT")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Order(WithContract):
    """An order: its contract (by symbol or conId), side, size, type and prices."""

    contract: ContractSpec
    action: str = text(required=True, upper=True, choices=("BUY", "SELL"), lower_too=True)
    quantity: float = number(required=True, minimum=1e-4, maximum=1e9)
    orderType: str = text(default="LMT", upper=True, choices=ORDER_TYPES)
    limitPrice: float | None = number(positive=True, maximum=1e9)
    stopPrice: float | None = number(positive=True, maximum=1e9)
    tif: str = text(default="DAY", upper=True, choices=TIFS)
    outsideRth: bool = flag_field(default=False)
    orderRef: str = text(max_len=128, to_ib=True)
    dedupe: bool = flag_field(default=True, description=(
        "an order whose orderRef IB already has is answered from it (always so at /v1/)"))

    NAMED: ClassVar[tuple[dict[str, Any], ...]] = (
        {"anyOf": ContractSpec.RULES[0]["anyOf"][:2]},)  # by symbol or conId
    RULES: ClassVar[tuple[dict[str, Any], ...]] = tuple(order_rules(
        list(ORDER_TYPES), "LMT", needs_limit=NEEDS_LIMIT, needs_stop=NEEDS_STOP,
        no_limit=("MKT",)))

    def check(self) -> None:
        if not self.contract.symbol and not self.contract.conId:
            raise bad_request("symbol", "is required")
        t = self.orderType
        if t in NEEDS_LIMIT and self.limitPrice is None:
            raise bad_request("limitPrice", f"is required for {t} orders")
        if t in NEEDS_STOP and self.stopPrice is None:
            raise bad_request("stopPrice", f"is required for {t} orders")
        if t == "MKT" and self.limitPrice is not None:
            raise bad_request("limitPrice", "must not be given for MKT orders")

    def body(self) -> dict[str, Any]:
        """The order as connector.sock takes it."""
        out: dict[str, Any] = {**self.contract.given(), "action": self.action,
                               "quantity": self.quantity, "orderType": self.orderType,
                               "tif": self.tif, "outsideRth": self.outsideRth,
                               "dedupe": self.dedupe}
        for name in ("limitPrice", "stopPrice", "orderRef"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out


# --- market data and fills ---------------------------------------------------------------

# generic tick lists a snapshot or a quote subscription may ask for
GENERIC_TICKS = (100, 101, 104, 106, 165, 221, 225, 233, 236, 258, 293, 294, 295, 375, 411)


@dataclasses.dataclass(frozen=True, kw_only=True)
class HeadTimestamp(WithContract):
    """The earliest data IB has for a contract."""

    contract: ContractSpec
    whatToShow: str = text(default="TRADES", upper=True,
                           choices=("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"))
    useRTH: bool = flag_field(default=True)
    priority: str = text(default="interactive", choices=PRIORITIES)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptionChain(WithContract):
    """The option expirations and strikes of an underlying, per exchange."""

    contract: ContractSpec


@dataclasses.dataclass(frozen=True, kw_only=True)
class Snapshot(WithContract):
    """One quote of a contract (from a live subscription when one holds it)."""

    contract: ContractSpec
    genericTicks: list[int] = tick_list(allowed=GENERIC_TICKS,
                                        description="greeks, IV, HV, OI and the like")
    marketDataType: int = integer(default=1, minimum=1, maximum=4,
                                  description="1 live, 2 frozen, 3 delayed, 4 delayed frozen")
    wait: float = number(default=2.0, minimum=0.1, maximum=30.0,
                         description="seconds to wait for the quote to fill in")

    def body(self) -> dict[str, Any]:
        return {**self.contract.given(), **self.given()}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Executions(Ask):
    """Fills, newest state, filtered."""

    symbol: str = text(upper=True, to_ib=True)
    secType: str = text(upper=True, to_ib=True)
    side: str = text(upper=True, choices=("", "BUY", "SELL"), lower_too=True)
    since: dt.datetime | None = when()
    lookbackDays: float | None = number(minimum=0, maximum=3650,
                                        description="the last N days by IB's clock")
    clientId: int = integer(description="0: every client's")
