"""KTRDR's and the bridge's historical answers are written once, by the connector
(``connector/shapes.py``), and relayed: each body is byte for byte the one the
gateway built before, by decoding the connector's answer and encoding it again
(the two functions below are that code, kept here as the reference)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ibhost import ibrules
from ibhost.connector.client import ConnectorClient
from ibhost.errors import IbhostError
from ibhost.sim import Simulator

from .connector_fixtures import running_connector
from .test_gateway import KEY, gateway

H = {"X-API-Key": KEY}


def old_ktrdr_body(columnar: bytes) -> bytes:
    """The KTRDR body as the gateway wrote it from v1's columnar answer."""
    result = orjson.loads(columnar)
    rows = result["count"]
    cols = result["data"]
    data = orjson.dumps({t[:19] + ".000Z": {"open": o, "high": h, "low": lo, "close": c,
                                             "volume": v}
                         for t, o, h, lo, c, v in zip(
                             cols["timestamp"], cols["open"], cols["high"], cols["low"],
                             cols["close"], cols["volume"], strict=True)}) if rows else b"{}"
    return orjson.dumps({"success": True, "data": data.decode(), "error": None,
                         "rows": rows})


def old_bridge_body(symbol: str, bar_size: str, result: dict[str, Any]) -> bytes:
    """The bridge body as the gateway wrote it from the connector's records."""
    daily = (ibrules.bar_seconds(bar_size) or 0) >= 86400

    def date(ts: str) -> str:
        t = dt.datetime.fromisoformat(ts)
        return t.date().isoformat() if daily else str(t)

    return json.dumps({"symbol": symbol, "bars": [
        {"date": date(b["timestamp"]), "open": b["open"], "high": b["high"], "low": b["low"],
         "close": b["close"], "volume": b["volume"], "average": b.get("wap")}
        for b in result["bars"]]}).encode()


@pytest.fixture
async def relayed(sim: Simulator, tmp_path: Path, aiohttp_client: Any,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Any, list[Any]]]:
    """The gateway, and for each shaped connector call the answer the old code got
    (asked of the connector the old way, with the same request)."""
    old: list[Any] = []
    shaped = ConnectorClient.historical_bytes

    async def spy(self: ConnectorClient, body: dict[str, Any]) -> bytes:
        shape = body.get("shape")
        plain = {k: v for k, v in body.items() if k != "shape"}
        if shape == "ktrdr":
            old.append(await shaped(self, {**plain, "columns": True}))
        elif shape == "bridge":
            old.append(await self.historical(plain))
        return await shaped(self, body)

    monkeypatch.setattr(ConnectorClient, "historical_bytes", spy)
    async with running_connector(tmp_path, sim), gateway(aiohttp_client, tmp_path, sim) as g:
        yield g, old


def day(d: dt.date, n: int = 1) -> tuple[str, str]:
    return f"{d}T00:00:00Z", f"{d + dt.timedelta(days=n)}T00:00:00Z"


KTRDR_CASES = [
    ("AAPL", "1m", *day(dt.date(2025, 11, 13))),  # KTRDR's day, midnight to midnight
    ("AAPL", "1m", "2025-11-13T14:30:00Z", "2025-11-13T15:30:00Z"),  # end is a bar start
    ("AAPL", "5m", *day(dt.date(2025, 11, 10), 2)),
    ("MSFT", "1h", *day(dt.date(2025, 11, 10), 5)),
    ("AAPL", "1d", *day(dt.date(2025, 10, 10), 30)),
    ("EUR.USD", "1h", *day(dt.date(2025, 11, 10), 3)),
    ("AAPL", "1h", *day(dt.date(2025, 11, 15), 2)),  # a weekend: no bars
    ("AAPL", "1m", "2025-11-13T02:00:00Z", "2025-11-13T03:00:00Z"),  # a night: no bars
    ("AAPL", "1h", *day(dt.date(2030, 1, 1))),  # after now: no IB request, no bars
]


@pytest.mark.parametrize(("symbol", "timeframe", "start", "end"), KTRDR_CASES)
async def test_ktrdr_body_is_the_old_body(relayed: tuple[Any, list[Any]], symbol: str,
                                          timeframe: str, start: str, end: str) -> None:
    gw, old = relayed
    r = await gw.post("/data/historical", json={"symbol": symbol, "timeframe": timeframe,
                                                "start": start, "end": end})
    assert r.status == 200 and r.content_type == "application/json"
    got = await r.read()
    assert len(old) == 1
    assert got == old_ktrdr_body(old[0])
    body = orjson.loads(got)
    assert body["success"] is True and body["rows"] == len(orjson.loads(body["data"]))


BRIDGE_CASES = [
    ("AAPL", "1 day", "5 D", "20251122 00:00:00 UTC"),
    ("aapl", "1 hour", "1 D", "20251121 21:00:00 UTC"),  # the symbol as it was sent
    ("MSFT", "1 min", "2 D", "20251121 21:00:00 UTC"),  # chunked
    ("AAPL", "30 mins", "1 W", ""),  # up to now
    ("AAPL", "1 week", "1 Y", "20251121 21:00:00 UTC"),
]


@pytest.mark.parametrize(("symbol", "bar_size", "duration", "end"), BRIDGE_CASES)
async def test_bridge_body_is_the_old_body(relayed: tuple[Any, list[Any]], symbol: str,
                                           bar_size: str, duration: str, end: str) -> None:
    gw, old = relayed
    r = await gw.post("/historical", headers=H, json={
        "symbol": symbol, "barSize": bar_size, "duration": duration, "endDateTime": end})
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    got = await r.read()
    assert len(old) == 1 and old[0]["bars"]
    assert got == old_bridge_body(symbol, bar_size, old[0])


HUGE = (b'{"success": false, "data": null, "rows": null, "error": "start: range needs 20405 '
        b'IB requests; use a larger bar size or a shorter range"}')


async def test_failures_keep_their_shapes(relayed: tuple[Any, list[Any]]) -> None:
    """What fails before or at the connector answers as it did (the bodies the
    handlers wrote before the connector shaped the bars)."""
    gw, _ = relayed
    start, end = day(dt.date(2025, 11, 13))
    unknown = await gw.post("/data/historical", json={
        "symbol": "ZZZZ", "timeframe": "1h", "start": start, "end": end})
    assert await unknown.read() == (b'{"success": false, "data": null, "rows": null, '
                                    b'"error": "Symbol validation failed: Symbol ZZZZ '
                                    b'not found"}')
    huge = await gw.post("/data/historical", json={  # refused by the connector
        "symbol": "AAPL", "timeframe": "1m", "start": "1970-01-02T00:00:00Z", "end": end})
    assert await huge.read() == HUGE
    bad = await gw.post("/historical", headers=H, json={
        "symbol": "AAPL", "duration": "1 D", "barSize": "1 hour", "whatToShow": "FOO"})
    assert bad.status == 400
    assert set(await bad.json()) >= {"error"} and "whatToShow" in (await bad.json())["error"]


async def test_the_connector_names_its_shapes(sim: Simulator, tmp_path: Path) -> None:
    """``"columns": true`` is ``"shape": "columns"``; a shape it does not write is a 400
    naming the field, before any IB request."""
    async with running_connector(tmp_path, sim) as (con, _):
        c = ConnectorClient(con.socket_path)
        try:
            body = {"symbol": "AAPL", "barSize": "1 hour", "start": "2025-11-13T14:00:00Z",
                    "end": "2025-11-13T18:00:00Z"}
            cols = await c.historical_bytes({**body, "columns": True})
            assert await c.historical_bytes({**body, "shape": "columns"}) == cols
            assert orjson.loads(cols)["count"] == 4
            with pytest.raises(IbhostError) as e:
                await c.historical_bytes({**body, "shape": "records"})
            assert e.value.code == "bad_request" and e.value.field == "shape"
        finally:
            await c.close()
