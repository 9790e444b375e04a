"""schemathesis hooks for tests/test_openapi_conformance.py: the rules JSON Schema cannot
state, and only those. A body the schema allows but one of these rules refuses is not
sent as "valid data"; the server's 400 for each is tested in test_schema_refusals.py.

- start before end (end defaults to now), and a range of at most 20,000 IB requests
  for its bar size (connector/historical.py): JSON Schema cannot compare two values.
- a price not below the contract's minimum tick: the tick is IB's answer about the
  contract (the simulator's stocks: 0.01), not something the schema can know.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import schemathesis
from schemathesis.generation import GenerationMode

from ibhost import ibrules

SIM_MIN_TICK = 0.01
PRICED = {("POST", "/v1/orders"), ("POST", "/order")}
RANGED = {("POST", "/v1/data/historical")}
MAX_CHUNKS = 20000  # connector/historical.py: past it the range is a 400


def _positive(case: Any) -> bool:
    meta = getattr(case, "meta", None)
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


def _when(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    if not _positive(case) or not isinstance(case.body, dict):
        return True
    key = (case.operation.method.upper(), case.operation.path)
    body = case.body
    if key in RANGED:
        start = _when(body.get("start"))
        end = _when(body.get("end")) or dt.datetime.now(dt.UTC)
        if start is not None and start >= end:
            return False
        bar = ibrules.bar_seconds(str(body.get("barSize") or ibrules.TIMEFRAMES.get(
            str(body.get("timeframe")), "")))
        if start is not None and bar:
            chunk = ibrules.chunk_duration(bar)[1]
            reach = min(end, dt.datetime.now(dt.UTC)) - start
            if reach.total_seconds() / chunk > MAX_CHUNKS - 1:
                return False
    if key in PRICED:
        for name in ("limitPrice", "stopPrice"):
            price = body.get(name)
            if isinstance(price, (int, float)) and price < SIM_MIN_TICK:
                return False
    return True
