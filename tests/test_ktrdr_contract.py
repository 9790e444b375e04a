"""KTRDR's IB host-service contract, read the way KTRDR's IbDataProvider reads it
(``ktrdr/data/acquisition/ib_data_provider.py``): status codes, key names, types,
and the ``data`` text that ``pd.read_json(StringIO(data), orient="index")`` turns
back into the same bars ibhost's own API returns."""

from __future__ import annotations

import asyncio
import datetime as dt
from io import StringIO
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ibhost.sim import Simulator

from .connector_fixtures import running_connector
from .test_gateway import gateway

HIST_KEYS = {"success", "data", "error", "rows"}
VALIDATE_KEYS = {"success", "is_valid", "error_message", "contract_info", "head_timestamps",
                 "error"}


@pytest.fixture
async def gw(sim: Simulator, tmp_path: Path, aiohttp_client: Any):
    async with running_connector(tmp_path, sim), gateway(aiohttp_client, tmp_path, sim) as g:
        yield g


def ktrdr_frame(resp: dict[str, Any]) -> pd.DataFrame:
    """Exactly what IbDataProvider.fetch_historical_data does with the answer."""
    if resp.get("data"):
        result = pd.read_json(StringIO(resp["data"]), orient="index")
        if not result.empty:
            result.index = pd.to_datetime(result.index)
        return result
    return pd.DataFrame()


async def v1_bars(gw: Any, body: dict[str, Any]) -> pd.DataFrame:
    r = await gw.post("/v1/data/historical?format=records", json=body)
    assert r.status == 200, await r.text()
    bars = (await r.json())["bars"]
    df = pd.DataFrame(bars).set_index("timestamp")[["open", "high", "low", "close", "volume"]]
    df.index = pd.to_datetime(df.index)
    return df


@pytest.mark.parametrize(("symbol", "timeframe", "days", "v1_contract"), [
    ("AAPL", "1h", 5, {"symbol": "AAPL"}),
    ("AAPL", "1d", 30, {"symbol": "AAPL"}),
    ("AAPL", "5m", 2, {"symbol": "AAPL"}),
    ("EUR.USD", "1h", 3, {"symbol": "EUR", "secType": "CASH", "currency": "USD",
                          "whatToShow": "BID"}),
])
async def test_historical_bars_equal_v1(gw: Any, symbol: str, timeframe: str, days: int,
                                        v1_contract: dict[str, Any]) -> None:
    start = dt.datetime(2025, 11, 10, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=days)
    r = await gw.post("/data/historical", json={
        "symbol": symbol, "timeframe": timeframe, "start": start.isoformat(),
        "end": end.isoformat(), "instrument_type": None})
    assert r.status == 200
    body = await r.json()
    assert set(body) == HIST_KEYS and body["success"] is True and body["error"] is None
    assert isinstance(body["data"], str) and body["rows"] > 0
    got = ktrdr_frame(body)
    assert len(got) == body["rows"] and list(got.columns) == ["open", "high", "low", "close",
                                                             "volume"]
    assert str(got.index.tz) == "UTC" and got.index.is_monotonic_increasing
    want = await v1_bars(gw, {**v1_contract, "timeframe": timeframe,
                              "start": start.isoformat(),
                              "end": (end + dt.timedelta(seconds=1)).isoformat()})
    assert list(got.index) == list(want.index)
    for col in ("open", "high", "low", "close", "volume"):
        assert got[col].astype(float).tolist() == pytest.approx(
            want[col].astype(float).tolist())


async def test_end_is_inclusive_and_instrument_type_honoured(gw: Any) -> None:
    start = dt.datetime(2025, 11, 17, tzinfo=dt.UTC)
    all_bars = await v1_bars(gw, {"symbol": "AAPL", "timeframe": "1h",
                                  "start": start.isoformat(), "end": "2025-11-19T00:00:00Z"})
    last = all_bars.index[5].to_pydatetime()  # a bar that starts exactly at `end`
    r = await (await gw.post("/data/historical", json={
        "symbol": "AAPL", "timeframe": "1h", "start": start.isoformat(),
        "end": last.isoformat(), "instrument_type": "STK"})).json()
    got = ktrdr_frame(r)
    assert got.index[-1] == last and len(got) == 6
    # CASH named explicitly: EURUSD without a dot is still the IDEALPRO pair
    fx = await (await gw.post("/data/historical", json={
        "symbol": "EURUSD", "timeframe": "1h", "start": "2025-11-17T00:00:00+00:00",
        "end": "2025-11-18T00:00:00+00:00", "instrument_type": "CASH"})).json()
    assert fx["success"] is True and fx["rows"] == 25  # both ends included
    wrong = await (await gw.post("/data/historical", json={
        "symbol": "AAPL", "timeframe": "1h", "start": "2025-11-17T00:00:00Z",
        "end": "2025-11-18T00:00:00Z", "instrument_type": "CASH"})).json()
    assert wrong["success"] is False and "currency pair" in wrong["error"]


async def test_validate_and_symbol_info(gw: Any) -> None:
    r = await gw.post("/data/validate", json={"symbol": "AAPL", "timeframes": ["1h", "1d"]})
    v = await r.json()
    assert r.status == 200 and set(v) == VALIDATE_KEYS
    assert v["success"] is True and v["is_valid"] is True and v["error_message"] is None
    ci = v["contract_info"]
    assert ci["asset_type"] == "STK" and ci["exchange"] == "NASDAQ" and ci["currency"] == "USD"
    assert ci["contract"]["conId"] == 265598 and ci["description"] == "APPLE INC"
    assert ci["trading_hours"]["regular_hours"] == {"start": "09:30", "end": "16:00",
                                                   "name": "Regular"}
    # IANA names, as KTRDR's trading hours give them (IB says US/Eastern)
    assert ci["trading_hours"]["timezone"] == "America/New_York"
    assert set(v["head_timestamps"]) == {"1h", "1d"}
    head = dt.datetime.fromisoformat(v["head_timestamps"]["1h"].replace("Z", "+00:00"))
    assert head == dt.datetime(1980, 12, 12, 14, 30, tzinfo=dt.UTC)
    for sym in ("EUR.USD", "EURUSD", "eur/usd"):
        fx = await (await gw.post("/data/validate", json={"symbol": sym})).json()
        assert fx["is_valid"] is True and fx["contract_info"]["asset_type"] == "CASH"
        assert fx["contract_info"]["contract"]["exchange"] == "IDEALPRO"
    es = await (await gw.post("/data/validate", json={"symbol": "ES"})).json()
    assert es["is_valid"] and es["contract_info"]["asset_type"] == "FUT"
    assert es["contract_info"]["trading_hours"]["timezone"] == "America/Chicago"
    front = es["contract_info"]["contract"]["lastTradeDateOrContractMonth"]
    chain = await gw.post("/v1/data/validate", json={"symbol": "ES", "secType": "FUT",
                                                      "exchange": "CME"})
    expiries = sorted(c["lastTradeDateOrContractMonth"]
                      for c in (await chain.json())["error"]["candidates"])
    assert front == expiries[0]
    info = await (await gw.get("/data/symbol-info/AAPL")).json()
    assert set(info) == VALIDATE_KEYS and info["is_valid"] and "1h" in info["head_timestamps"]


async def test_unknown_symbol_is_a_data_answer(gw: Any) -> None:
    v = await (await gw.post("/data/validate", json={"symbol": "ZZZZ", "timeframes": []})
               ).json()
    assert v["success"] is True and v["is_valid"] is False
    assert v["error_message"] == "Symbol ZZZZ not found" and v["contract_info"] is None
    hint = await (await gw.post("/data/validate", json={"symbol": "USDSEK"})).json()
    assert hint["is_valid"] is False and hint["error_message"].endswith("Did you mean USD.SEK?")
    h = await (await gw.post("/data/historical", json={
        "symbol": "ZZZZ", "timeframe": "1h", "start": "2025-11-17T00:00:00Z",
        "end": "2025-11-18T00:00:00Z"})).json()
    assert h["success"] is False and h["error"].startswith("Symbol validation failed")
    ts = await (await gw.get("/data/head-timestamp?symbol=ZZZZ&timeframe=1h")).json()
    assert ts == {"success": True, "timestamp": None, "error": None}


async def test_head_timestamp(gw: Any) -> None:
    r = await gw.get("/data/head-timestamp", params={"symbol": "AAPL", "timeframe": "1d"})
    body = await r.json()
    assert r.status == 200 and set(body) == {"success", "timestamp", "error"}
    assert body["success"] is True
    assert dt.datetime.fromisoformat(body["timestamp"]) == dt.datetime(
        1980, 12, 12, 14, 30, tzinfo=dt.UTC)
    fx = await (await gw.get("/data/head-timestamp", params={
        "symbol": "EUR.USD", "timeframe": "1h", "instrument_type": "CASH"})).json()
    assert fx["timestamp"].startswith("2005-03-01")


@pytest.mark.parametrize(("body", "field"), [
    ({"timeframe": "1h", "start": "2025-11-17", "end": "2025-11-18"}, "symbol"),
    ({"symbol": "AAPL", "start": "2025-11-17", "end": "2025-11-18"}, "timeframe"),
    ({"symbol": "AAPL", "timeframe": "7m", "start": "2025-11-17", "end": "2025-11-18"},
     "timeframe"),
    ({"symbol": "AAPL", "timeframe": "1h", "start": "yesterday", "end": "2025-11-17"},
     "start"),
    ({"symbol": "AAPL", "timeframe": "1h", "start": "2025-11-17", "end": "2025-11-18",
      "instrument_type": "BOND"}, "instrument_type"),
])
async def test_bad_input_is_fastapi_422(gw: Any, body: dict[str, Any], field: str) -> None:
    r = await gw.post("/data/historical", json=body)
    assert r.status == 422
    detail = (await r.json())["detail"]
    assert isinstance(detail, list) and detail[0]["loc"] == ["body", field]
    assert field in detail[0]["msg"]


async def test_start_after_end_is_a_failure_not_invalid_input(gw: Any) -> None:
    """KTRDR's model takes any two datetimes: a reversed range is a failed fetch
    (200 success false, the reason in error), as its service answers one."""
    r = await gw.post("/data/historical", json={
        "symbol": "AAPL", "timeframe": "1h", "start": "2025-11-18", "end": "2025-11-17"})
    body = await r.json()
    assert r.status == 200 and body["success"] is False and "start" in body["error"]


async def test_health_root_and_detailed(gw: Any) -> None:
    root = await (await gw.get("/")).json()
    # KTRDR's own tests (test_ib_host_service_integration, validate-integration.sh) and
    # its docs read exactly this service name; ibhost's own name is under "name"
    assert root["service"] == "IB Connector Host Service" and root["status"] == "running"
    assert root["name"] == "ibhost" and root["version"]
    h = await gw.get("/health")
    body = await h.json()
    assert h.status == 200 and body["healthy"] is True
    assert body["ib_status"] == {"connected": True, "connection_count": 1}
    d = await (await gw.get("/health/detailed")).json()
    assert d["healthy"] is True and d["ib_gateway_connected"] is True
    assert isinstance(d["total_requests"], int) and d["total_requests"] >= 2
    assert isinstance(d["uptime_seconds"], float)


async def test_connector_down(sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    """No connector: data calls answer 200 success=false naming why; /health says so."""
    async with gateway(aiohttp_client, tmp_path, sim) as g:
        h = await (await g.get("/health")).json()
        assert h["healthy"] is False and h["ib_status"]["connected"] is False
        assert h["status"] == "disconnected"
        r = await g.post("/data/historical", json={
            "symbol": "AAPL", "timeframe": "1h", "start": "2025-11-17T00:00:00Z",
            "end": "2025-11-18T00:00:00Z"})
        body = await r.json()
        assert r.status == 200 and body["success"] is False
        assert "connector is not running" in body["error"]
        v = await (await g.post("/data/validate", json={"symbol": "AAPL"})).json()
        assert set(v) == VALIDATE_KEYS and v["success"] is False and v["is_valid"] is None
        assert (await g.get("/readyz")).status == 503
        assert (await g.get("/v1/health")).status == 503


async def test_start_before_the_known_head_timestamp_is_a_failure(gw: Any) -> None:
    """Once the head timestamp is known (a validation asked for it), a start before it
    is KTRDR's failure, not partial data."""
    v = await (await gw.post("/data/validate", json={"symbol": "AAPL",
                                                     "timeframes": ["1d"]})).json()
    head = v["head_timestamps"]["1d"]
    r = await gw.post("/data/historical", json={
        "symbol": "AAPL", "timeframe": "1d", "start": "1975-01-01T00:00:00Z",
        "end": "1981-01-01T00:00:00Z"})
    body = await r.json()
    assert r.status == 200 and body["success"] is False and body["data"] is None
    assert body["error"].startswith("Data not available before 1980-12-12T14:30:00+00:00")
    assert head.startswith("1980-12-12")
    ok = await (await gw.post("/data/historical", json={
        "symbol": "AAPL", "timeframe": "1d", "start": "2025-11-17T00:00:00Z",
        "end": "2025-11-22T00:00:00Z"})).json()
    assert ok["success"] is True and ok["rows"] == 5


async def test_health_with_a_trailing_slash_and_redoc(gw: Any) -> None:
    """KTRDR's health router answers GET /health/ with its HealthResponse; FastAPI
    serves /redoc beside /docs."""
    r = await gw.get("/health/")
    body = await r.json()
    assert r.status == 200 and set(body) == {"healthy", "service", "timestamp",
                                             "ib_status", "connection_info", "error"}
    assert body["healthy"] is True and body["service"] == "ib-connector"
    assert body["ib_status"] == {"connected": True, "connection_count": 1}
    assert body["error"] is None and body["connection_info"]["service_running"] is True
    redoc = await gw.get("/redoc")
    assert redoc.status == 200 and redoc.content_type == "text/html"


async def test_a_day_of_minute_bars_costs_one_connector_call_and_one_ib_request(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    """KTRDR asks for a day midnight to midnight (end inclusive). Concurrent cold
    requests for one symbol classify it once; a warm request is one connector call
    (no /validate) and, since no regular-hours bar starts at midnight, one IB
    request, not a second one for the bar a second past ``end``."""
    async with running_connector(tmp_path, sim) as (con, _), \
            gateway(aiohttp_client, tmp_path, sim) as gw:
        calls: dict[str, int] = {"validate": 0, "encoded": 0}
        svc = con.service
        validate, encoded = svc.validate, svc.history.encoded

        async def counted_validate(*a: Any, **kw: Any) -> Any:
            calls["validate"] += 1
            return await validate(*a, **kw)

        async def counted_encoded(*a: Any, **kw: Any) -> Any:
            calls["encoded"] += 1
            return await encoded(*a, **kw)

        svc.validate = counted_validate  # type: ignore[method-assign]
        svc.history.encoded = counted_encoded  # type: ignore[method-assign]

        def day(d: int) -> dict[str, Any]:
            return {"symbol": "AAPL", "timeframe": "1m",
                    "start": f"2025-11-{d:02d}T00:00:00Z",
                    "end": f"2025-11-{d + 1:02d}T00:00:00Z"}

        cold = [gw.post("/data/historical", json=day(d)) for d in (10, 11, 12)]
        answers = await asyncio.gather(*cold)
        assert all(r.status == 200 for r in answers)
        assert calls == {"validate": 1, "encoded": 3}  # classified once for all three
        before = sim.state()["stats"]["requests"]["reqHistoricalData"]
        r = await (await gw.post("/data/historical", json=day(13))).json()
        assert r["success"] is True and r["rows"] == 390
        assert calls == {"validate": 1, "encoded": 4}
        assert sim.state()["stats"]["requests"]["reqHistoricalData"] == before + 1
        got = ktrdr_frame(r)
        assert got.index[0] == pd.Timestamp("2025-11-13T14:30:00Z")


def test_a_bar_may_start_only_inside_the_session() -> None:
    from ibhost.gateway.ktrdr import bar_may_start_at

    stock = {"timeZone": "US/Eastern", "liquidHours": "20251210:0930-20251210:1600"}
    at = dt.datetime
    assert not bar_may_start_at(stock, at(2025, 11, 14, 0, 0, tzinfo=dt.UTC))  # 19:00 ET
    assert bar_may_start_at(stock, at(2025, 11, 14, 15, 0, tzinfo=dt.UTC))  # 10:00 ET
    assert not bar_may_start_at(stock, at(2025, 11, 15, 15, 0, tzinfo=dt.UTC))  # Saturday
    fx = {"timeZone": "US/Eastern", "liquidHours": "20251210:1715-20251211:1700"}
    assert bar_may_start_at(fx, at(2025, 11, 14, 0, 0, tzinfo=dt.UTC))  # overnight
    assert bar_may_start_at({}, at(2025, 11, 15, 0, 0, tzinfo=dt.UTC))  # unknown: yes


async def test_a_cold_future_is_resolved_once(sim: Simulator, tmp_path: Path,
                                              aiohttp_client: Any) -> None:
    """A cold request for a future tries KTRDR's candidates (a stock, then a CME
    future, whose expiries are ambiguous); the expiry it chooses is then in the
    connector's contract cache, so the bars ask IB for no contract details again."""
    async with running_connector(tmp_path, sim) as (con, _), \
            gateway(aiohttp_client, tmp_path, sim) as gw:
        asked: list[str] = []
        svc = con.service
        details = svc.details

        async def counted(spec: Any, *a: Any, **kw: Any) -> Any:
            asked.append(spec.secType)
            return await details(spec, *a, **kw)

        svc.details = counted  # type: ignore[method-assign]
        r = await (await gw.post("/data/historical", json={
            "symbol": "ES", "timeframe": "1h", "start": "2025-11-10T00:00:00Z",
            "end": "2025-11-12T00:00:00Z"})).json()
        assert r["success"] is True and r["rows"] > 0
        assert asked == ["STK", "FUT"]
