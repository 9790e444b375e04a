"""Where the gateway is, and every gateway call described once (``Api``): both
clients execute these."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .frames import bars_frame

DEFAULT_URL = "http://localhost:5001"


def use_host_service() -> bool:
    """``USE_IB_HOST_SERVICE`` as existing setups read it (default: true)."""
    return os.environ.get("USE_IB_HOST_SERVICE", "true").strip().lower() in (
        "1", "true", "yes", "on")


def service_url() -> str:
    return os.environ.get("IB_HOST_SERVICE_URL", DEFAULT_URL).rstrip("/")


def _iso(t: dt.datetime | dt.date | str | None) -> str | None:
    if t is None or isinstance(t, str):
        return t
    if isinstance(t, dt.datetime):
        return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).isoformat()
    return t.isoformat()


def _hist_body(symbol: str, timeframe: str, start: Any, end: Any, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"symbol": symbol, "start": _iso(start), "end": _iso(end), **kw}
    body["barSize" if " " in timeframe else "timeframe"] = timeframe
    return {k: v for k, v in body.items() if v is not None}


@dataclass(frozen=True)
class Call:
    """One API call: what to send and how to shape the answer."""

    method: str
    path: str
    body: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    shape: Callable[[Any], Any] = lambda x: x


def _head_ts(r: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(r["headTimestamp"])


class Api:
    """Every gateway call, described once; both clients execute these."""

    @staticmethod
    def health() -> Call:
        return Call("GET", "/v1/health")

    @staticmethod
    def historical(symbol: str, timeframe: str, start: Any, end: Any, **kw: Any) -> Call:
        return Call("POST", "/v1/data/historical", _hist_body(symbol, timeframe, start, end, **kw),
                    shape=bars_frame)

    @staticmethod
    def validate(symbol: str, **kw: Any) -> Call:
        return Call("POST", "/v1/data/validate", {"symbol": symbol, **kw})

    @staticmethod
    def head_timestamp(symbol: str, **kw: Any) -> Call:
        return Call("GET", "/v1/data/head-timestamp", params={"symbol": symbol, **kw},
                    shape=_head_ts)

    @staticmethod
    def option_chain(symbol: str, **kw: Any) -> Call:
        return Call("GET", "/v1/options/chain", params={"symbol": symbol, **kw})

    @staticmethod
    def snapshot(symbol: str, **kw: Any) -> Call:
        return Call("POST", "/v1/market/snapshot", {"symbol": symbol, **kw})

    @staticmethod
    def place_order(symbol: str, action: str, quantity: float, key: str | None,
                    **kw: Any) -> Call:
        return Call("POST", "/v1/orders", {"symbol": symbol, "action": action,
                                        "quantity": quantity, **kw},
                    headers={"Idempotency-Key": key} if key else {})

    @staticmethod
    def cancel_order(order_id: int) -> Call:
        return Call("DELETE", f"/v1/orders/{int(order_id)}")

    @staticmethod
    def open_orders() -> Call:
        return Call("GET", "/v1/orders")

    @staticmethod
    def executions(**filters: Any) -> Call:
        return Call("GET", "/v1/executions", params=filters)

    @staticmethod
    def positions() -> Call:
        return Call("GET", "/v1/positions")
