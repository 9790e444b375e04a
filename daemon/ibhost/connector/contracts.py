"""Contracts as IB's library and the caller see them (the caller's specification is
``asks.ContractSpec``, re-exported here)."""

from __future__ import annotations

import logging
from typing import Any

from .. import models
from ..asks import SEC_TYPES, ContractSpec, parse_spec
from ..errors import IbhostError
from .values import _num

log = logging.getLogger("ibhost.connector.contracts")

CANDIDATES = 20  # the contracts an ambiguous answer names for the caller to choose from


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


__all__ = ["SEC_TYPES", "ContractSpec", "ambiguous", "contract_ref", "describe_details",
           "parse_spec", "to_contract"]
