"""Trading guards, checked before an order reaches the connector."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..config import TradingConfig
from ..errors import IbhostError, bad_request


def _refuse(guard: str, message: str) -> IbhostError:
    return IbhostError("forbidden", f"{guard}: {message}", extra={"guard": guard})


async def check_order(cfg: TradingConfig, body: dict[str, Any],
                      price_of: Callable[[], Awaitable[float | None]]) -> None:
    """Raise 403 naming the guard that refuses this order; the body is already valid."""
    if not cfg.enabled:
        raise _refuse("trading_disabled", "trading is off (set trading.enabled = true)")
    sec_type = str(body.get("secType") or "STK").upper()
    symbol = str(body.get("symbol") or "").upper()
    order_type = str(body.get("orderType") or "LMT").upper()
    qty = float(body["quantity"])
    if sec_type not in cfg.allowed_sec_types:
        raise _refuse("sec_type", f"{sec_type} is not in trading.allowed_sec_types "
                                  f"({', '.join(cfg.allowed_sec_types)})")
    if cfg.symbols and symbol not in cfg.symbols:
        raise _refuse("symbol_allowlist", f"{symbol} is not in trading.symbols")
    if order_type == "MKT" and sec_type in ("OPT", "FOP") and not cfg.allow_market_options:
        raise _refuse("market_order_on_option", "market orders on options are refused; "
                                                "use a limit price")
    if qty > cfg.max_quantity:
        raise _refuse("max_quantity", f"{qty:g} is over trading.max_quantity "
                                      f"({cfg.max_quantity:g})")
    price = body.get("limitPrice") or body.get("stopPrice")
    if price is None:
        price = await price_of()
        if price is None:
            raise _refuse("max_notional", "no price to check the order's notional against")
    try:
        mult = float(body.get("multiplier") or (100 if sec_type == "OPT" else 1))
    except (TypeError, ValueError):
        raise bad_request("multiplier", "must be a number like 100") from None
    notional = qty * float(price) * mult
    if notional > cfg.max_notional:
        raise _refuse("max_notional", f"notional {notional:,.2f} is over "
                                      f"trading.max_notional ({cfg.max_notional:,.2f})")
