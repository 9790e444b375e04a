"""Requests declared once (ibhost/fields.py, asks.py, asks_families.py): what the
server reads and what /openapi.json states come from the same declaration.

Bodies are drawn (derandomized: the same every run) from a pool of good and bad values
per field. Whatever the request's JSON Schema allows, its reader takes (a 400 there
would be a body the document promises and the server refuses); and a value of the
wrong kind is a 400 naming its field, whatever else the body holds."""

from __future__ import annotations

import dataclasses
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ibhost import asks, asks_families
from ibhost.connector import asks as casks
from ibhost.errors import IbhostError
from ibhost.fields import Ask, Flag, Integer, IntList, Number, Text, When
from ibhost.gateway.openapi import SPEC

BODIES: list[type[Ask]] = [asks.ContractSpec, asks.Historical, asks.Order, asks.Snapshot,
                           casks.QuoteHold, asks_families.KtrdrHistorical,
                           asks_families.KtrdrValidate, asks_families.BridgeCancel,
                           asks_families.BridgeOption, asks_families.BridgeHistorical,
                           asks_families.BridgeOrder, casks.StreamHold,
                           casks.HistoricalCall, casks.Reconnect]
QUERIES: list[type[Ask]] = [asks.HeadTimestamp, asks.OptionChain, asks.Executions,
                            asks_families.KtrdrHeadTimestamp,
                            asks_families.BridgeExecutions, casks.StreamOpen,
                            casks.StreamRelease, casks.OrderEvents, casks.OrderByRef,
                            casks.PnlQuery, casks.Freshness]

TEXT_POOL = ["", "SMART", "AAPL", "x" * 70, "bad\x01", "ünï", 5, None]
POOLS: dict[type, list[Any]] = {
    Number: [0, 0.0001, 1, 150.5, 1e9, 2e9, -1, "3", True, None],
    Integer: [0, 1, 4, 265598, -1, 2**31, "12", 1.5, True, None],
    Flag: [True, False, "yes", " No ", 0, 1, "maybe", 2, "\x0b\n\x0c", "", None],
    When: ["2025-01-02T10:00:00Z", "2025-06-03T10:00:00+01:00", "2025-13-40", "yesterday",
           5, None],
    IntList: [[], [100], [100, 101], [7], "100,101", "x", None],
}
SPECIAL = {  # fields whose good values a generic pool would rarely hit
    "symbol": ["AAPL", "BRK.B", "EUR.USD", "", "bad sym!", 5, None],
    "lastTradeDateOrContractMonth": ["202612", "20261218", "2026-12", "", None],
    "expiry": ["202612", "20261218", "12/2026", None],
    "multiplier": ["100", "0.1", "1e2", None],
    "duration": ["1 D", "2 W", "400 D", "3 days", None],
    "timeframes": [[], ["1h", "1d"], ["x" * 9], "1h", None],
    "since": ["2025-01-02T10:00:00Z", "", None],
    "channel": ["c1", "", None, 5],
    "orderRef": ["r1", "", "x" * 200, None],
    "expiration": ["20261218", "2026-12-18", "", "12/18/2026", None],
    "endDateTime": ["", "20251120 15:00:00 US/Eastern", "tomorrow", None],
}


def pool(name: str, f: Any) -> list[Any]:
    if name in SPECIAL:
        return SPECIAL[name]
    if isinstance(f, Text) and f.choices is not None:
        return [*f.choices, *(c.lower() for c in f.choices), "NOPE", "", None]
    for kind, values in POOLS.items():
        if isinstance(f, kind):
            return values
    return TEXT_POOL


def declared(model: type[Ask]) -> dict[str, Any]:
    out = {}
    if issubclass(model, asks.WithContract):
        out.update(asks.ContractSpec.declared())
    out.update(model.declared())
    if model is asks.ContractSpec or issubclass(model, asks.WithContract):
        out["expiry"] = asks.ContractSpec.ALIASES["expiry"].metadata["field"]
    return out


def bodies(model: type[Ask], *, hidden: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies of the model's fields (``hidden``: also those read but not published,
    an old client's spelling, about which the document promises nothing)."""
    return st.fixed_dictionaries({}, optional={
        name: st.sampled_from(pool(name, f)) for name, f in declared(model).items()
        if hidden or not f.hidden})


def reads(model: type[Ask], body: dict[str, Any], query: bool = False) -> IbhostError | None:
    try:
        model.read(body, query=query)
    except IbhostError as e:
        return e
    return None


def unstated(model: type[Ask], body: dict[str, Any]) -> bool:
    """The rules JSON Schema cannot state (tests/st_hooks.py): start before end."""
    if issubclass(model, asks.Historical):
        try:
            model.read(body)
        except IbhostError as e:
            return e.field == "start" and "before end" in e.message
    return False


@pytest.mark.parametrize("model", BODIES, ids=lambda m: m.__name__)
@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_what_the_schema_allows_is_read(model: type[Ask], data: Any) -> None:
    body = data.draw(bodies(model, hidden=False))
    if not jsonschema.Draft202012Validator(model.schema()).is_valid(body):
        return
    assume(not unstated(model, body))
    err = reads(model, body)
    assert err is None, (body, err and err.to_dict())


@pytest.mark.parametrize("model", BODIES + QUERIES, ids=lambda m: m.__name__)
@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.data())
def test_a_value_of_the_wrong_kind_is_refused_naming_its_field(model: type[Ask],
                                                             data: Any) -> None:
    fields = declared(model)
    name = data.draw(st.sampled_from(sorted(fields)))
    body = data.draw(bodies(model))
    body[name] = {"not": "a value"}
    err = reads(model, body)
    assert err is not None and err.status == 400
    # the first bad field read is named: this one, or one drawn bad before it
    assert err.field in fields or err.field == "symbol", err.to_dict()
    body = {k: v for k, v in body.items() if k == name}
    err = reads(model, {**minimal(model), **body})
    assert err is not None and err.field == name, (body, err and err.to_dict())


def minimal(model: type[Ask]) -> dict[str, Any]:
    """The least body the model takes."""
    return {asks.Order: {"symbol": "AAPL", "action": "BUY", "quantity": 1, "limitPrice": 1},
            asks_families.KtrdrHistorical: {"symbol": "AAPL", "timeframe": "1h",
                                            "start": "2025-01-02", "end": "2025-01-03"},
            asks_families.KtrdrValidate: {"symbol": "AAPL"},
            asks_families.KtrdrHeadTimestamp: {"symbol": "AAPL", "timeframe": "1h"},
            asks_families.BridgeCancel: {"orderId": 3},
            asks_families.BridgeOption: {"symbol": "AAPL", "expiration": "20261218",
                                         "strike": 200, "right": "C"},
            asks_families.BridgeOrder: {"symbol": "AAPL", "action": "BUY", "quantity": 1,
                                        "limitPrice": 1},
            asks.Historical: {"symbol": "AAPL", "barSize": "1 hour", "duration": "1 D"},
            casks.HistoricalCall: {"symbol": "AAPL", "barSize": "1 hour", "duration": "1 D"},
            casks.OrderByRef: {"orderRef": "r1"},
            casks.Reconnect: {}, casks.StreamOpen: {}, casks.StreamRelease: {},
            casks.OrderEvents: {}, casks.PnlQuery: {}, casks.Freshness: {},
            asks.Executions: {}, asks_families.BridgeExecutions: {},
            casks.StreamHold: {"channel": "c1"},
            }.get(model, {"symbol": "AAPL"})


@pytest.mark.parametrize("model", BODIES + QUERIES, ids=lambda m: m.__name__)
def test_the_least_body_is_read(model: type[Ask]) -> None:
    body = minimal(model)
    if model in QUERIES:
        body = {k: str(v) for k, v in body.items()}
    assert reads(model, body, query=model in QUERIES) is None


def test_every_declared_field_is_in_the_document() -> None:
    schemas = SPEC["components"]["schemas"]
    for name, model in [("Contract", asks.ContractSpec),
                        ("HistoricalRequest", asks.Historical),
                        ("OrderRequest", asks.Order), ("SnapshotRequest", asks.Snapshot),
                        ("KtrdrHistorical", asks_families.KtrdrHistorical),
                        ("KtrdrValidate", asks_families.KtrdrValidate),
                        ("BridgeCancel", asks_families.BridgeCancel),
                        ("BridgeOption", asks_families.BridgeOption),
                        ("BridgeHistorical", asks_families.BridgeHistorical),
                        ("BridgeOrder", asks_families.BridgeOrder)]:
        props = schemas[name]["properties"]
        hidden = {n for n, f in declared(model).items() if f.hidden}
        assert set(declared(model)) - hidden <= set(props), name
        required = [n for n, f in model.declared().items() if f.required]
        assert sorted(schemas[name].get("required", [])) == sorted(required), name
    params = {p["name"] for p in SPEC["paths"]["/v1/executions"]["get"]["parameters"]}
    assert params == {f.name for f in dataclasses.fields(asks.Executions)}


def test_a_historical_request_reaches_the_connector_as_read() -> None:
    ask = asks.Historical.read({"symbol": "eur.usd", "secType": "cash", "timeframe": "1h",
                                "start": "2025-01-02", "useRTH": "no"})
    assert ask.body() == {"symbol": "EUR", "secType": "CASH", "exchange": "IDEALPRO",
                          "barSize": "1 hour",  # currency: USD, the default
                          "start": "2025-01-02T00:00:00+00:00", "useRTH": False,
                          "priority": "interactive"}
    # read again at the connector, it is the same request
    again = asks.Historical.read(ask.body())
    assert again.contract == ask.contract and again.bar_size == ask.bar_size


def test_the_contract_rules_in_one_place() -> None:
    c = asks.ContractSpec.read({"conId": "265598"}, query=True)
    assert c.conId == 265598
    with pytest.raises(IbhostError) as e:  # a JSON body's numbers are JSON numbers
        asks.ContractSpec.read({"conId": "265598"})
    assert e.value.field == "conId"
    assert asks.ContractSpec.read({"symbol": "ES", "secType": "FUT"}).exchange == ""
    assert asks.ContractSpec.read({"symbol": "AAPL", "currency": ""}).currency == ""
    assert asks.ContractSpec.read({"symbol": "SPY", "secType": "OPT", "right": "call",
                                   "expiry": "20261218"}).right == "C"
    for bad, field in [({"symbol": "A", "right": "X"}, "right"),
                       ({"symbol": "A", "strike": 1e9}, "strike"),
                       ({"symbol": "A", "multiplier": "1e2"}, "multiplier"),
                       ({"symbol": "A", "lastTradeDateOrContractMonth": "2026"},
                        "lastTradeDateOrContractMonth"),
                       ({"symbol": "A", "lastTradeDateOrContractMonth": "202612",
                         "expiry": "12/2026"}, "expiry"),  # an alias is checked too
                       ({"symbol": "A B!"}, "symbol"), ({"secType": "STK"}, "symbol")]:
        with pytest.raises(IbhostError) as e:
            asks.ContractSpec.read(bad)
        assert e.value.field == field and e.value.status == 400, bad


def test_a_blank_boolean_is_its_default_as_the_document_says() -> None:
    """The words' pattern allows blanks around an empty word (the default); the reader
    takes them so (schemathesis sent ?useRTH=%0B%0A%0C and got a 400)."""
    f = asks.Historical.declared()["useRTH"]
    for blank in ("", " ", "\x0b\n\x0c\t"):
        for query in (False, True):
            assert jsonschema.Draft202012Validator(f.schema(query)).is_valid(blank)
            assert f.read({"useRTH": blank}, "useRTH", query=query) is True
    with pytest.raises(IbhostError):
        f.read({"useRTH": " maybe "}, "useRTH")
