"""Random and malformed bodies and query strings at every endpoint: never a 5xx,
and every 400 names the field."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibhost.gateway.app import init_app
from ibhost.sim import Simulator

from .connector_fixtures import make_config, running_connector

KEY = "fuzz-key-0123456789abcdef"
FIELDS = ["symbol", "secType", "exchange", "currency", "barSize", "timeframe", "start", "end",
          "duration", "whatToShow", "useRTH", "priority", "strike", "right", "expiry",
          "conId", "genericTicks", "marketDataType", "wait", "action", "quantity",
          "orderType", "limitPrice", "stopPrice", "tif", "orderRef", "outsideRth",
          "multiplier", "localSymbol", "uid", "expiration", "symbols", "timeframes",
          "instrument_type", "endDateTime", "permId", "orderId", "secType", "tradingClass"]
values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["AAPL", "MSFT", "1 min", "1h", "2025-11-20", "2025-11-20T14:30:00Z",
                     "1 D", "TRADES", "STK", "OPT", "BUY", "LMT", "MKT", "C", "20261218",
                     "", " ", "\x00", "9" * 40]),
    st.lists(st.integers(-5, 500), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=8),
    st.dictionaries(st.text(max_size=10), values, max_size=4),
)
raw_bodies = st.one_of(st.binary(max_size=64),
                       st.sampled_from([b"", b"null", b"[]", b"{", b'"x"', b"1e999"]))
POSTS = ["/v1/data/historical", "/v1/data/validate", "/v1/market/snapshot", "/v1/orders"]
GETS = ["/v1/data/head-timestamp", "/v1/options/chain", "/v1/executions", "/v1/health", "/v1/orders",
        "/v1/positions", "/"]
DELETES = ["/v1/orders/{x}"]
KTRDR_POSTS = ["/data/historical", "/data/validate"]
KTRDR_GETS = ["/data/head-timestamp", "/data/symbol-info/AAPL", "/health/detailed"]
BRIDGE_POSTS = ["/market-data/batch", "/option-quote", "/historical", "/order",
                "/order/cancel"]
BRIDGE_GETS = ["/market-data/AAPL", "/option-chain/AAPL", "/executions", "/orders",
               "/positions", "/portfolio", "/account-summary", "/pnl", "/pnl-single", "/diag",
               "/diag/logs",
               "/health", "/ping", "/readyz", "/livez"]


def check(status: int, text: str) -> None:
    assert status < 500, (status, text)
    if status >= 400:
        err = json.loads(text)["error"]
        assert err["code"] and err["message"]
        if status == 400:
            assert err.get("field"), text


def check_ktrdr(status: int, text: str) -> None:
    """KTRDR's shapes: FastAPI 422 with a located detail, or 200 success=false."""
    assert status < 500, (status, text)
    body = json.loads(text)
    if status == 422:
        assert body["detail"][0]["loc"][1] and body["detail"][0]["msg"], text
    elif status >= 400:
        assert body["detail"], text
    elif body.get("success") is False:
        assert isinstance(body["error"], str) and body["error"], text


def check_bridge(status: int, text: str) -> None:
    """The bridge's shape: {"error": "<text>"}; a 400 also names the field."""
    assert status < 500, (status, text)
    if status >= 400:
        body = json.loads(text)
        assert isinstance(body["error"], str) and body["error"], text
        if status == 400:
            assert body.get("field"), text


@pytest.fixture
async def gw(sim: Simulator, tmp_path: Path, aiohttp_client: Any):
    async with running_connector(tmp_path, sim):
        cfg = make_config(tmp_path, sim, gateway__api_key=KEY, trading__enabled=True,
                          trading__max_quantity=5, trading__max_notional=1000)
        client = await aiohttp_client(init_app(cfg))
        for _ in range(300):  # the first health poll: /v1/health is 503 until then
            if (await client.get("/v1/health")).status == 200:
                break
            await asyncio.sleep(0.05)
        yield client


FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(path=st.sampled_from(POSTS), body=bodies, key=st.booleans())
async def test_json_bodies(gw: Any, path: str, body: dict[str, Any], key: bool) -> None:
    headers = {"X-API-Key": KEY} if key else {}
    r = await gw.post(path, json=body, headers=headers)
    check(r.status, await r.text())


@FUZZ
@given(path=st.sampled_from(POSTS), raw=raw_bodies)
async def test_raw_bodies(gw: Any, path: str, raw: bytes) -> None:
    r = await gw.post(path, data=raw, headers={"X-API-Key": KEY,
                                               "Content-Type": "application/json"})
    check(r.status, await r.text())


@FUZZ
@given(path=st.sampled_from(GETS), query=st.dictionaries(
    st.sampled_from([*FIELDS, "since", "side", "clientId", "connect", "format"]),
    st.text(max_size=20), max_size=5))
async def test_query_strings(gw: Any, path: str, query: dict[str, str]) -> None:
    r = await gw.get(path, params=query)
    check(r.status, await r.text())


@FUZZ
@given(oid=st.text(max_size=12).filter(lambda s: "/" not in s and "?" not in s
                                       and "#" not in s))
async def test_order_ids(gw: Any, oid: str) -> None:
    r = await gw.delete(f"/v1/orders/{oid}", headers={"X-API-Key": KEY})
    check(r.status, await r.text())


@FUZZ
@given(path=st.sampled_from(KTRDR_POSTS + BRIDGE_POSTS), body=bodies, key=st.booleans())
async def test_contract_bodies(gw: Any, path: str, body: dict[str, Any], key: bool) -> None:
    headers = {"X-API-Key": KEY} if key else {}
    r = await gw.post(path, json=body, headers=headers)
    (check_ktrdr if path in KTRDR_POSTS else check_bridge)(r.status, await r.text())


@FUZZ
@given(path=st.sampled_from(KTRDR_GETS + BRIDGE_GETS), query=st.dictionaries(
    st.sampled_from([*FIELDS, "lookbackDays", "account", "model", "connect", "limit"]),
    st.text(max_size=20), max_size=5))
async def test_contract_queries(gw: Any, path: str, query: dict[str, str]) -> None:
    r = await gw.get(path, params=query, headers={"X-API-Key": KEY})
    (check_ktrdr if path in KTRDR_GETS else check_bridge)(r.status, await r.text())


@FUZZ
@given(raw=raw_bodies, path=st.sampled_from(KTRDR_POSTS + BRIDGE_POSTS))
async def test_contract_raw_bodies(gw: Any, raw: bytes, path: str) -> None:
    r = await gw.post(path, data=raw, headers={"X-API-Key": KEY,
                                               "Content-Type": "application/json"})
    (check_ktrdr if path in KTRDR_POSTS else check_bridge)(r.status, await r.text())


@FUZZ
@given(symbol=st.text(max_size=12).filter(lambda s: "/" not in s and "?" not in s
                                          and "#" not in s and s not in (".", "..")))
async def test_contract_path_symbols(gw: Any, symbol: str) -> None:
    for path, chk in ((f"/data/symbol-info/{symbol}", check_ktrdr),
                      (f"/market-data/{symbol}", check_bridge),
                      (f"/option-chain/{symbol}", check_bridge)):
        r = await gw.get(path, headers={"X-API-Key": KEY})
        if r.status == 404 and "no such route" in await r.text():
            continue  # an empty segment is not this route
        chk(r.status, await r.text())


async def test_health_with_a_connect_that_is_not_a_boolean(gw: Any) -> None:
    """/health is called by the bridge's clients: its one 400 is in the bridge's shape."""
    r = await gw.get("/health", params={"connect": "maybe"})
    body = await r.json()
    assert r.status == 400 and isinstance(body["error"], str) and body["field"] == "connect"
    ok = await gw.get("/health", params={"connect": "false"})
    assert ok.status == 200 and "healthy" in await ok.json()


# --- headers and raw bodies, byte for byte, on every route family -----------------
# aiohttp's client only sends UTF-8 headers, so these requests are written to the
# socket as bytes: header values may hold any byte HTTP allows (tab, printable ASCII,
# and 0x80-0xff, which is not UTF-8 on its own).

READ_HEADERS = ["Host", "X-API-Key", "Idempotency-Key", "X-Timeout", "Accept",
                "X-Request-ID", "Authorization", "Last-Event-ID", "Content-Type"]
header_value = st.one_of(
    st.binary(max_size=40).map(lambda b: bytes(c for c in b if c == 9 or 32 <= c != 127)),
    st.sampled_from([KEY.encode(), b"localhost", b"evil.example", b"text/csv", b"5",
                     b"0", b"nan", b"\xff\xfe", b"caf\xc3\xa9", b"\xed\xa0\x80", b"",
                     b"9" * 5000]),
)
header_sets = st.dictionaries(st.sampled_from(READ_HEADERS), header_value, max_size=4)


def _huge(field: str, digits: int) -> bytes:
    return b'{"symbol": "AAPL", "' + field.encode() + b'": ' + b"9" * digits + b"}"


byte_bodies = st.one_of(
    raw_bodies,
    bodies.map(lambda b: json.dumps(b).encode()),
    st.builds(_huge, st.sampled_from(FIELDS), st.sampled_from([4300, 4301, 6000])),
    st.sampled_from([b'{"symbol": "\xff"}', b'\xef\xbb\xbf{"symbol": "AAPL"}',
                     '{"symbol": "AAPL"}'.encode("utf-16")]),
)
SHARED = {"/ping", "/livez", "/readyz"}  # every client's: ibhost's error shape
ROUTES = ([("POST", p, check) for p in POSTS] + [("GET", p, check) for p in GETS]
          + [("POST", p, check_ktrdr) for p in KTRDR_POSTS]
          + [("GET", p, check_ktrdr) for p in KTRDR_GETS]
          + [("POST", p, check_bridge) for p in BRIDGE_POSTS]
          + [("GET", p, check if p in SHARED else check_bridge) for p in BRIDGE_GETS])


async def send_raw(gw: Any, method: str, path: str, headers: dict[str, bytes],
                   body: bytes) -> tuple[int, bytes, bytes]:
    """One request as bytes: (status, head, body) of the answer."""
    headers = {"Host": b"localhost", **headers}
    lines = [f"{method} {path} HTTP/1.1".encode()]
    lines += [k.encode() + b": " + v for k, v in headers.items()]
    lines += [b"Content-Length: %d" % len(body), b"Connection: close"]
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 60)
    finally:
        writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, rest


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), headers=header_sets, body=byte_bodies)
async def test_headers_and_bodies_as_bytes(gw: Any, route: tuple[str, str, Any],
                                           headers: dict[str, bytes], body: bytes) -> None:
    """No 5xx and always JSON, whatever bytes the headers and body hold."""
    method, path, chk = route
    status, head, text = await send_raw(gw, method, path, headers,
                                        body if method == "POST" else b"")
    assert status < 500, (status, text)
    content_type = next((ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")[1:]
                         if ln.lower().startswith(b"content-type:")), b"")
    if content_type.startswith(b"text/csv"):
        assert status == 200, text  # asked for CSV and got it
        return
    json.loads(text)  # always JSON
    chk(status, text.decode())
