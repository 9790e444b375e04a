"""The OpenAPI document's cross-field rules agree with the tables the server checks
(ibrules), and the request schemas say what the gateway takes and refuses."""

from __future__ import annotations

import re

import jsonschema
import pytest

from ibhost import ibrules
from ibhost.gateway import openapi
from ibhost.schema_rules import duration_pattern, int_range
from ibhost.validate import TIMEOUT_MAX, TIMEOUT_MIN, timeout_seconds


@pytest.mark.parametrize("lo,hi", [(1, 9), (1, 10), (5, 123), (37, 5021), (100, 199),
                                   (1, 1), (20, 365), (28801, 86400)])
def test_int_range_matches_exactly_the_range(lo: int, hi: int) -> None:
    pattern = re.compile(f"^(?:{int_range(lo, hi)})$")
    for n in range(0, hi + 300):
        assert bool(pattern.match(str(n))) == (lo <= n <= hi), n


@pytest.mark.parametrize("bar", sorted(set(ibrules.BAR_SIZES.values())))
def test_duration_pattern_is_ibs_step_table(bar: int) -> None:
    pattern = re.compile(duration_pattern(bar))
    for unit, most in ibrules.MAX_DURATION.items():
        counts = range(1, most + 2) if unit != "S" else [
            *range(1, 200), *range(most - 50, most + 2),
            *(m + d for m, _, _ in ibrules.STEP_TABLE for d in (-1, 0, 1))]
        for n in counts:
            fits = n <= most and ibrules.duration_fits(bar, n * ibrules.DURATION_UNITS[unit])
            assert bool(pattern.match(f"{n} {unit}")) == fits, (bar, n, unit)



def valid(name: str, body: dict) -> bool:
    schema = {"$ref": f"#/components/schemas/{name}",
              "components": {"schemas": openapi.SCHEMAS}}
    return jsonschema.Draft202012Validator(schema).is_valid(body)


@pytest.mark.parametrize("body,ok", [
    ({"symbol": "AAPL", "barSize": "1 hour", "duration": "2 D"}, True),
    ({"symbol": "AAPL", "timeframe": "1h", "barSize": "1 hour", "duration": "2 D"}, True),
    ({"symbol": "AAPL", "timeframe": "1h", "barSize": "1 day", "duration": "2 D"}, False),
    ({"symbol": "AAPL", "barSize": "1 day", "duration": "1 S"}, False),  # too short
    ({"symbol": "AAPL", "barSize": "1 secs", "duration": "1 D"}, False),  # hard-paced
    ({"symbol": "AAPL", "barSize": "1 min", "duration": "1 W"}, True),  # chunked
    ({"symbol": "AAPL", "barSize": None, "timeframe": None, "duration": "2 D"}, False),
    ({"symbol": "AAPL", "barSize": "1 hour", "start": "2025-11-20T14:30:00Z",
      "duration": "2 D"}, False),
    ({"symbol": "AAPL", "barSize": "1 hour", "start": "2025-11-20T14:30:00Z",
      "duration": None}, True),
    ({"symbol": "EUR", "secType": "CASH", "barSize": "1 hour", "duration": "1 D",
      "whatToShow": "TRADES"}, False),
    ({"symbol": "EUR", "secType": "CASH", "barSize": "1 hour", "duration": "1 D"}, True),
])
def test_historical_request_rules(body: dict, ok: bool) -> None:
    assert valid("HistoricalRequest", body) == ok


@pytest.mark.parametrize("body,ok", [
    ({"orderType": "LMT"}, False), ({}, False), ({"limitPrice": 1.0}, True),
    ({"orderType": "MKT"}, True), ({"orderType": "MKT", "limitPrice": 1.0}, False),
    ({"orderType": "STP", "stopPrice": 1.0}, True), ({"orderType": "STP"}, False),
    ({"orderType": "STP LMT", "stopPrice": 1.0}, False),
    ({"orderType": "STP LMT", "stopPrice": 1.0, "limitPrice": 1.0}, True),
    ({"localSymbol": "AAPL", "symbol": None, "limitPrice": 1.0}, False),
])
def test_order_request_rules(body: dict, ok: bool) -> None:
    base = {"symbol": "AAPL", "action": "BUY", "quantity": 1}
    assert valid("OrderRequest", {**base, **body}) == ok


@pytest.mark.parametrize("body,ok", [
    ({}, True), ({"duration": "1 S"}, False), ({"barSize": "1 secs"}, False),
    ({"barSize": "1 secs", "duration": "60 S"}, True), ({"duration": ""}, True),
])
def test_bridge_historical_rules(body: dict, ok: bool) -> None:
    assert valid("BridgeHistorical", {"symbol": "AAPL", **body}) == ok


@pytest.mark.parametrize("body,ok", [
    ({}, False), ({"limitPrice": 1.0}, True), ({"orderType": "MKT"}, True),
    ({"secType": "OPT", "limitPrice": 1.0}, False),
    ({"secType": "OPT", "limitPrice": 1.0, "expiration": "20261218", "strike": 100,
      "right": "C"}, True),
])
def test_bridge_order_rules(body: dict, ok: bool) -> None:
    assert valid("BridgeOrder", {"symbol": "AAPL", "action": "BUY", "quantity": 1,
                                 **body}) == ok


def test_timeout_bounds_are_the_servers() -> None:
    schema = openapi.TIMEOUT
    assert (schema["minimum"], schema["maximum"]) == (TIMEOUT_MIN, TIMEOUT_MAX)
    assert timeout_seconds(str(TIMEOUT_MIN)) == TIMEOUT_MIN
    for absurd in ("5e-324", "0", "-1", "nan", "inf", str(TIMEOUT_MAX * 2)):
        with pytest.raises(Exception) as e:
            timeout_seconds(absurd)
        assert getattr(e.value, "field", None) == "timeout"
