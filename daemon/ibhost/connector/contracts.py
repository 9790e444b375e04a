"""Contract specifications from requests, and their resolution to one IB contract."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from typing import Any

from .. import models
from ..errors import IbhostError, bad_request
from ..validate import printable_ascii, symbol_ok
from .values import _num

log = logging.getLogger("ibhost.connector.contracts")

SEC_TYPES = ("STK", "OPT", "FUT", "CASH", "IND", "FOP", "CFD", "BOND", "FUND", "CRYPTO")
DEFAULT_EXCHANGE = {"CASH": "IDEALPRO", "FUT": "", "IND": ""}
CANDIDATES = 20  # the contracts an ambiguous answer names for the caller to choose from


@dataclass(frozen=True)
class ContractSpec:
    symbol: str = ""
    secType: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    primaryExchange: str = ""
    lastTradeDateOrContractMonth: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    localSymbol: str = ""
    tradingClass: str = ""
    conId: int = 0

    def key(self) -> tuple[Any, ...]:
        return tuple(asdict(self).values())


def _text(body: dict[str, Any], name: str, default: str = "") -> str:
    v = body.get(name, default)
    if v is None:
        return default
    if not isinstance(v, str):
        raise bad_request(name, "must be a string")
    if len(v) > 64:
        raise bad_request(name, "is longer than 64 characters")
    if not printable_ascii(v):  # TWS fields are NUL-separated: no control characters
        raise bad_request(name, "must be printable ASCII")
    return v.strip()


MULTIPLIER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?")


def parse_spec(body: dict[str, Any], *, query: bool = False) -> ContractSpec:
    """Validate the contract fields of a JSON body (numbers are JSON numbers), or of a
    query string (``query``: numbers come as text)."""
    sec_type = _text(body, "secType", "STK").upper() or "STK"
    if sec_type not in SEC_TYPES:
        raise bad_request("secType", f"must be one of {', '.join(SEC_TYPES)}")
    symbol = _text(body, "symbol").upper()
    con_id_raw = body.get("conId", 0)
    if con_id_raw is not None and not isinstance(con_id_raw, (str | int if query
                                                              else int | float)):
        raise bad_request("conId", "must be an integer")
    if isinstance(con_id_raw, bool) or (isinstance(con_id_raw, float) and not (
            con_id_raw.is_integer())) or (isinstance(con_id_raw, str) and con_id_raw and not (
            con_id_raw.isascii() and con_id_raw.isdigit())):
        raise bad_request("conId", "must be an integer")
    try:
        con_id = int(con_id_raw or 0)
    except (TypeError, ValueError, OverflowError):
        raise bad_request("conId", "must be an integer") from None
    if not 0 <= con_id < 2**31:
        raise bad_request("conId", "must be between 0 and 2147483647")
    local = _text(body, "localSymbol")
    if not symbol and not con_id and not local:
        raise bad_request("symbol", "is required (or conId / localSymbol)")
    if symbol and not symbol_ok(symbol):
        raise bad_request("symbol", "has characters a symbol cannot contain")
    if sec_type == "CASH" and "." in symbol and "currency" not in body:
        base, _, quote = symbol.partition(".")
        symbol, currency = base, quote
    else:
        currency = _text(body, "currency", "USD").upper()  # "" = any currency
    exchange = _text(body, "exchange", DEFAULT_EXCHANGE.get(sec_type, "SMART")).upper()
    strike_raw = body.get("strike", 0.0)
    if strike_raw is not None and (isinstance(strike_raw, bool) or not isinstance(
            strike_raw, (str | float if query else int | float))):
        raise bad_request("strike", "must be a number")
    try:
        strike = float(strike_raw or 0.0)
    except (TypeError, ValueError, OverflowError):
        raise bad_request("strike", "must be a number") from None
    if not 0 <= strike < 1e9:  # also NaN and infinity
        raise bad_request("strike", "must be a non-negative number below 1e9")
    right = _text(body, "right").upper()
    if right and right not in ("C", "P", "CALL", "PUT"):
        raise bad_request("right", "must be C or P")
    expiry = _text(body, "lastTradeDateOrContractMonth") or _text(body, "expiry")
    if expiry and not (expiry.isdigit() and len(expiry) in (6, 8)):
        raise bad_request("lastTradeDateOrContractMonth", "must be YYYYMM or YYYYMMDD")
    multiplier = _text(body, "multiplier")
    if multiplier and not MULTIPLIER.fullmatch(multiplier):
        raise bad_request("multiplier", "must be a number like 100 or 0.1")
    return ContractSpec(
        symbol=symbol, secType=sec_type, exchange=exchange, currency=currency,
        primaryExchange=_text(body, "primaryExchange").upper(),
        lastTradeDateOrContractMonth=expiry, strike=strike, right=right[:1],
        multiplier=multiplier, localSymbol=local,
        tradingClass=_text(body, "tradingClass"), conId=con_id,
    )


def to_contract(lib: Any, spec: ContractSpec) -> Any:
    return lib.Contract(
        conId=spec.conId, symbol=spec.symbol, secType=spec.secType, exchange=spec.exchange,
        currency=spec.currency, primaryExchange=spec.primaryExchange,
        lastTradeDateOrContractMonth=spec.lastTradeDateOrContractMonth, strike=spec.strike,
        right=spec.right, multiplier=spec.multiplier, localSymbol=spec.localSymbol,
        tradingClass=spec.tradingClass,
    )


def describe_details(cd: Any) -> models.ContractDetails:
    c = cd.contract
    return models.ContractDetails(
        conId=c.conId, symbol=c.symbol, secType=c.secType, exchange=c.exchange,
        primaryExchange=c.primaryExchange, currency=c.currency,
        localSymbol=c.localSymbol, tradingClass=c.tradingClass,
        lastTradeDateOrContractMonth=c.lastTradeDateOrContractMonth,
        strike=c.strike, right=c.right, multiplier=c.multiplier,
        longName=cd.longName, timeZone=cd.timeZoneId, tradingHours=cd.tradingHours,
        liquidHours=cd.liquidHours, minTick=cd.minTick,
        validExchanges=cd.validExchanges, industry=cd.industry, category=cd.category,
    )


def contract_ref(c: Any) -> dict[str, Any]:
    """The ``models.ContractRef`` fields of one of the library's contracts: IB's
    unset values ("" and 0) as null."""
    return {"conId": c.conId, "symbol": c.symbol, "secType": c.secType,
            "currency": c.currency, "localSymbol": c.localSymbol, "right": c.right or None,
            "strike": _num(c.strike) or None,
            "lastTradeDateOrContractMonth": c.lastTradeDateOrContractMonth or None,
            "multiplier": _num(c.multiplier)}


def ambiguous(spec: ContractSpec, details: list[Any]) -> IbhostError:
    cands = [describe_details(cd) for cd in details[:CANDIDATES]]
    short = ", ".join(f"{c.localSymbol or c.symbol} {c.secType} {c.currency} "
                      f"{c.primaryExchange or c.exchange}" for c in cands[:5])
    return IbhostError(
        "ambiguous", f"{len(details)} contracts match {spec.symbol or spec.localSymbol}: "
        f"{short}; add currency, primaryExchange or expiry to choose one",
        field="symbol", ib_code=200, extra={"candidates": models.plain(cands)},
    )
