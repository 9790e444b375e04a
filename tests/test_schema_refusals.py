"""What the OpenAPI document forbids, and what JSON Schema cannot say (tests/st_hooks.py
keeps such bodies out of schemathesis' valid data), is a 400 naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ibhost.sim import Simulator

from .test_gateway import KEY, trading_stack

BARS = {"symbol": "AAPL", "barSize": "1 hour"}
ORDER = {"symbol": "AAPL", "action": "BUY", "quantity": 1}
CASES = [
    ("/v1/data/historical", {**BARS, "start": "2025-11-20T14:30:00Z",
                             "end": "2025-11-19T14:30:00Z"}, "start"),
    ("/v1/data/historical", {**BARS, "start": "2099-01-01T00:00:00Z"}, "start"),
    ("/v1/data/historical", {"symbol": "AAPL", "barSize": "1 secs",
                             "start": "1980-01-01T00:00:00Z"}, "start"),
    ("/v1/data/historical", {**BARS, "barSize": "1 day", "duration": "1 S"}, "duration"),
    ("/v1/data/historical", {**BARS, "timeframe": "1d", "duration": "1 D"}, "timeframe"),
    ("/v1/data/historical", {**BARS, "barSize": None, "duration": "1 D"}, "barSize"),
    ("/v1/data/historical?timeout=5e-324", {**BARS, "duration": "1 D"}, "timeout"),
    ("/v1/orders", {**ORDER, "orderType": "LMT"}, "limitPrice"),
    ("/v1/orders", {**ORDER, "orderType": "STP"}, "stopPrice"),
    ("/v1/orders", {**ORDER, "orderType": "MKT", "limitPrice": 1.0}, "limitPrice"),
    ("/v1/orders", {**ORDER, "limitPrice": 0.001}, "limitPrice"),  # below the tick
]


@pytest.mark.parametrize("path,body,field", CASES)
async def test_refused_naming_the_field(sim: Simulator, tmp_path: Path, aiohttp_client: Any,
                                        path: str, body: dict[str, Any], field: str) -> None:
    async with trading_stack(aiohttp_client, tmp_path, sim) as gw:
        r = await gw.post(path, json=body, headers={"X-API-Key": KEY})
        err = (await r.json())["error"]
        assert r.status == 400 and err["field"] == field, err
