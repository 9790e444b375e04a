"""Which IB contract a bare symbol names, each drop-in by its original's rule, in
this one place:

- KTRDR's validator (``candidates``, ``resolve``): a currency pair is CASH on
  IDEALPRO, else a US stock on SMART, else a CME future (the nearest expiry).
  Shared by the KTRDR contract and the gap-filler.
- the wheel-strat bridge (``bridge_contract``): VIX, SPX, NDX, RUT and VIXW are
  indices (the VIX family on CBOE), every other symbol a US stock on SMART.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .errors import IbhostError, bad_request

CURRENCIES = {"USD", "EUR", "GBP", "JPY", "CHF", "AUD", "CAD", "NZD", "SEK", "NOK", "DKK",
              "HKD", "SGD", "CNH", "MXN", "ZAR", "PLN", "CZK", "HUF", "ILS", "TRY"}
INSTRUMENT_TYPES = {
    "STK": "STK", "STOCK": "STK", "CASH": "CASH", "FOREX": "CASH", "FX": "CASH",
    "FUT": "FUT", "FUTURE": "FUT", "FUTURES": "FUT", "IND": "IND", "INDEX": "IND",
    "CRYPTO": "CRYPTO",
}


# the bridge asks for these as indices (its get_contract); every other bare symbol is a stock
BRIDGE_INDICES = ("VIX", "SPX", "NDX", "RUT", "VIXW")


def bridge_contract(symbol: str) -> dict[str, Any]:
    """The contract the wheel-strat bridge means by a bare symbol."""
    s = symbol.upper()
    if s in BRIDGE_INDICES:
        return {"symbol": s, "secType": "IND", "exchange": "CBOE" if s.startswith("VIX")
                else "SMART", "currency": "USD"}
    return {"symbol": s, "secType": "STK", "exchange": "SMART", "currency": "USD"}


def normalize(symbol: str) -> str:
    return symbol.upper().strip().replace("/", ".")


def forex_pair(symbol: str) -> tuple[str, str] | None:
    s = normalize(symbol)
    if "." in s:
        base, _, quote = s.partition(".")
    elif len(s) == 6:
        base, quote = s[:3], s[3:]
    else:
        return None
    if len(base) == 3 and len(quote) == 3 and base.isalpha() and quote.isalpha():
        return base, quote
    return None


def candidates(symbol: str, instrument_type: str | None) -> list[dict[str, Any]]:
    """The contract specs to try, in KTRDR's order: forex, stock, future."""
    s = normalize(symbol)
    pair = forex_pair(s)
    cash = ({"symbol": pair[0], "currency": pair[1], "secType": "CASH",
             "exchange": "IDEALPRO"} if pair else None)
    by_type = {
        "CASH": cash,
        "STK": {"symbol": s, "secType": "STK", "exchange": "SMART", "currency": "USD"},
        "FUT": {"symbol": s, "secType": "FUT", "exchange": "CME", "currency": "USD"},
        "IND": {"symbol": s, "secType": "IND", "exchange": "", "currency": "USD"},
        "CRYPTO": {"symbol": s, "secType": "CRYPTO", "exchange": "PAXOS", "currency": "USD"},
    }
    if instrument_type:
        kind = INSTRUMENT_TYPES.get(instrument_type.upper())
        if kind is None:
            raise bad_request("instrument_type",
                              f"must be one of {', '.join(sorted(INSTRUMENT_TYPES))}")
        spec = by_type[kind]
        if spec is None:
            raise bad_request("symbol", f"{symbol!r} is not a currency pair like EUR.USD")
        return [spec]
    return [c for c in (by_type["CASH"], by_type["STK"], by_type["FUT"]) if c]


def front(cands: list[dict[str, Any]]) -> dict[str, Any]:
    """The nearest expiry among several futures (KTRDR's CME lookup takes the first)."""
    dated = [c for c in cands if c.get("lastTradeDateOrContractMonth")]
    return min(dated, key=lambda c: c["lastTradeDateOrContractMonth"]) if dated else cands[0]


async def resolve(symbol: str, instrument_type: str | None,
                  validate: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
                  ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The first candidate IB knows, as (its contract details, a spec that addresses
    exactly it); None when IB knows none. ``validate`` asks the connector's
    /validate; an ambiguous future resolves to the nearest expiry, another
    ambiguous contract to IB's first."""
    for spec in candidates(symbol, instrument_type):
        try:
            details = await validate(spec)
        except IbhostError as e:
            if e.code == "not_found":
                continue
            if e.code != "ambiguous" or not e.extra.get("candidates"):
                raise
            details = (front(e.extra["candidates"]) if spec["secType"] == "FUT"
                       else e.extra["candidates"][0])
        exact = {"conId": details["conId"], "secType": details["secType"],
                 "exchange": spec["exchange"] or details["exchange"],
                 "currency": details["currency"]}
        return details, exact
    return None
