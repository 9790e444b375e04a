"""Inputs that must get a clear 4xx, orders that must not be doubled, what a caller
without a key may see, and the command line's failures."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ibhost.sim import Simulator

from .connector_fixtures import running_connector
from .test_gateway import KEY, trading_stack

H = {"X-API-Key": KEY}


@pytest.fixture
async def gw(sim: Simulator, tmp_path: Path, aiohttp_client: Any):
    async with trading_stack(aiohttp_client, tmp_path, sim) as g:
        yield g


def nested(depth: int) -> str:
    return '{"symbol": "AAPL", "x": ' + "[" * depth + "]" * depth + "}"


async def test_deeply_nested_json_is_a_400(gw: Any) -> None:
    body = nested(1100)
    for path in ("/v1/data/validate", "/v1/data/historical", "/v1/market/snapshot",
                 "/v1/orders", "/order"):
        r = await gw.post(path, data=body, headers={**H, "Content-Type": "application/json"})
        err = await r.json()
        assert r.status == 400, (path, err)
        text = str(err)
        assert "nested too deeply" in text and "body" in text
    k = await gw.post("/data/validate", data=body, headers={"Content-Type": "application/json"})
    assert k.status == 422 and (await k.json())["detail"][0]["loc"] == ["body", "body"]


@pytest.mark.parametrize(("raw", "field"), [
    ('{"symbol": "AAPL", "conId": Infinity}', "conId"),  # Python's JSON reads it: inf
    ('{"symbol": "AAPL", "conId": 1e400}', "conId"),
    ('{"symbol": "AAPL", "conId": 1' + "0" * 400 + "}", "conId"),
    ('{"symbol": "AAPL", "genericTicks": [1e400]}', "genericTicks"),
    ('{"symbol": "AAPL", "strike": 1e400}', "strike"),
])
async def test_huge_numbers_are_a_400(gw: Any, raw: str, field: str) -> None:
    r = await gw.post("/v1/market/snapshot", data=raw,
                      headers={"Content-Type": "application/json"})
    err = (await r.json())["error"]
    assert r.status == 400 and err["field"] == field, err


async def raw_request(gw: Any, head: bytes, body: bytes = b"") -> tuple[int, Any]:
    """One HTTP/1.1 request written byte for byte (aiohttp's client will not send a
    header that is not UTF-8); the status and the JSON body."""
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    try:
        writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                     + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


HUGE = b'{"symbol": "AAPL", "action": "BUY", "conId": 1' + b"0" * 5000 + b"}"


@pytest.mark.parametrize(("path", "family"), [
    ("/v1/market/snapshot", "ibhost"), ("/v1/orders", "ibhost"), ("/order", "bridge"),
    ("/option-quote", "bridge"), ("/data/historical", "ktrdr"), ("/data/validate", "ktrdr")])
async def test_an_integer_past_python_s_digit_limit_is_a_4xx(
        gw: Any, path: str, family: str, caplog: pytest.LogCaptureFixture) -> None:
    """int() refuses more than 4300 digits with a ValueError: a 4xx naming the field,
    in the route family's shape, and nothing logged as unexpected."""
    status, body = await raw_request(
        gw, b"POST " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nX-API-Key: "
        + KEY.encode() + b"\r\nContent-Type: application/json\r\n", HUGE)
    if family == "ktrdr":
        assert status == 422 and body["detail"][0]["loc"] == ["body", "conId"], body
    else:
        text = body["error"] if family == "bridge" else body["error"]["message"]
        assert status == 400 and "4300 digits" in text, body
        assert (body if family == "bridge" else body["error"])["field"] == "conId"
    nested = b'{"symbol": "AAPL", "genericTicks": [[' + b"7" * 4400 + b"]]}"
    status, body = await raw_request(
        gw, b"POST /v1/market/snapshot HTTP/1.1\r\nHost: localhost\r\n", nested)
    assert status == 400 and body["error"]["field"] == "genericTicks", body
    assert "unexpected error" not in caplog.text


async def test_a_body_that_is_not_utf8_is_a_400(gw: Any) -> None:
    status, body = await raw_request(
        gw, b"POST /v1/data/validate HTTP/1.1\r\nHost: localhost\r\n",
        b'{"symbol": "AAPL\xff"}')
    assert status == 400 and body["error"]["field"] == "body", body
    assert "UTF-8" in body["error"]["message"]


@pytest.mark.parametrize("header", ["X-API-Key", "Idempotency-Key", "X-Timeout", "Accept",
                                    "Host"])
async def test_a_header_that_is_not_utf8_is_a_400_naming_it(
        gw: Any, header: str, caplog: pytest.LogCaptureFixture) -> None:
    order = b'{"symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT", ' \
            b'"limitPrice": 1.0}'
    for path, family in (("/v1/orders", "ibhost"), ("/order", "bridge"),
                         ("/data/historical", "ktrdr")):
        head = {"Host": b"localhost", "X-API-Key": KEY.encode(), header: b"ab\xff\xfe"}
        raw = b"POST " + path.encode() + b" HTTP/1.1\r\n" + b"".join(
            k.encode() + b": " + v + b"\r\n" for k, v in head.items())
        status, body = await raw_request(gw, raw + b"Content-Type: application/json\r\n",
                                         order)
        if family == "ktrdr":
            assert status == 422 and body["detail"][0]["loc"] == ["header", header], body
        elif family == "bridge":
            assert status == 400 and body["field"] == header, body
            assert "UTF-8" in body["error"]
        else:
            assert status == 400 and body["error"]["field"] == header, body
            assert "not valid UTF-8" in body["error"]["message"]
    assert "unexpected error" not in caplog.text


async def test_a_request_id_that_is_not_ascii_is_replaced(gw: Any) -> None:
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    writer.write(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: \xff\xfe\r\n"
                 b"Connection: close\r\n\r\n")
    raw = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 200") and b"\xff" not in raw
    rid = [ln for ln in raw.split(b"\r\n") if ln.lower().startswith(b"x-request-id:")]
    assert rid and rid[0].split(b":", 1)[1].strip().isalnum()


async def test_tiny_quantities_and_prices_are_refused(gw: Any) -> None:
    base = {"symbol": "AAPL", "action": "BUY", "orderType": "LMT"}
    r = await gw.post("/v1/orders", json={**base, "quantity": 1e-300, "limitPrice": 200},
                      headers=H)
    assert r.status == 400 and (await r.json())["error"]["field"] == "quantity"
    r = await gw.post("/v1/orders", json={**base, "quantity": 1, "limitPrice": 1e-300},
                      headers=H)
    err = (await r.json())["error"]
    assert r.status == 400 and err["field"] == "limitPrice" and "minimum tick" in err["message"]


async def test_body_size_limit_is_exact_and_true(gw: Any) -> None:
    pad = "x" * (900 * 1024)
    r = await gw.post("/v1/data/validate", json={"symbol": "AAPL", "pad": pad})
    assert r.status == 200  # valid JSON under the limit is read whole

    async def chunks() -> Any:
        for _ in range(160):  # 10 MB, chunked: no Content-Length to refuse early
            yield b" " * 65536

    r = await gw.post("/v1/data/validate", data=chunks(),
                      headers={"Content-Type": "application/json"})
    assert r.status == 413 and (await r.json())["error"]["code"] == "payload_too_large"


async def test_order_ids_are_ascii_digits(gw: Any) -> None:
    r = await gw.delete("/v1/orders/%D9%A3", headers=H)  # an Arabic-Indic three
    assert r.status == 400 and (await r.json())["error"]["field"] == "orderId"


async def test_trace_is_a_405_with_allow(gw: Any) -> None:
    r = await gw.request("TRACE", "/v1/health")
    assert r.status == 405 and "GET" in r.headers["Allow"]


async def test_bar_size_conflicting_with_timeframe_is_a_400(gw: Any) -> None:
    r = await gw.post("/v1/data/historical", json={"symbol": "AAPL", "barSize": "1 min",
                                                    "timeframe": "1h", "duration": "1 D"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "timeframe"
    same = await gw.post("/v1/data/historical", json={
        "symbol": "AAPL", "barSize": "1 hour", "timeframe": "1h", "duration": "1 D",
        "end": "2025-11-20T21:00:00Z"})
    assert same.status == 200


async def test_forex_defaults_to_midpoint_and_trades_names_the_field(gw: Any) -> None:
    body = {"symbol": "EUR", "secType": "CASH", "currency": "USD", "timeframe": "1h",
            "start": "2025-11-17T00:00:00Z", "end": "2025-11-18T00:00:00Z"}
    ok = await (await gw.post("/v1/data/historical", json=body)).json()
    assert ok["whatToShow"] == "MIDPOINT" and ok["count"] == 24
    r = await gw.post("/v1/data/historical", json={**body, "whatToShow": "TRADES"})
    err = (await r.json())["error"]
    assert r.status == 400 and err["field"] == "whatToShow" and err["ib_code"] == 162


async def test_account_data_needs_a_key(gw: Any) -> None:
    for path in ("/v1/positions", "/v1/executions", "/v1/orders", "/v1/portfolio",
                 "/v1/account/summary"):
        r = await gw.get(path)
        assert r.status == 401, path
        assert (await gw.get(path, headers=H)).status == 200, path
    for path in ("/health/detailed", "/v1/health/detailed"):
        anon = await (await gw.get(path)).text()
        assert "DU1234567" not in anon and "home" not in anon and "config" not in anon
        keyed = await (await gw.get(path, headers=H)).text()
        assert "DU1234567" in keyed and '"config"' in keyed


async def test_a_retried_order_is_not_placed_twice(sim: Simulator, tmp_path: Path) -> None:
    """The same orderRef sent again while the first is still being placed (a gateway
    killed and restarted, a client retrying) waits for the first: one order at IB."""
    # heartbeats at their usual pace: the slowed simulator must not look dead
    async with running_connector(tmp_path, sim, ib__heartbeat_interval=30,
                                 ib__heartbeat_timeout=10) as (_, client):
        sim.slow(400)  # contract lookup and placement both take a while
        body = {"symbol": "IBM", "action": "BUY", "quantity": 1, "orderType": "LMT",
                "limitPrice": 1.0, "orderRef": "key-1"}
        first = asyncio.ensure_future(client.request("POST", "/orders", json_body=body))
        await asyncio.sleep(0.15)
        second = await client.request("POST", "/orders", json_body=body)
        one = await first
        sim.slow(0)
        refs = [o["orderRef"] for o in sim.state()["orders"]]
    assert second["duplicate"] is True and second["orderId"] == one["orderId"], (one, second)
    assert refs.count("key-1") == 1, (refs, one["status"], one["duplicate"], second["status"],
                                      one["log"])


def _cli(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ibhost.cli", *args], capture_output=True,
                          text=True, timeout=60, **kw)


def test_short_api_key_and_lists_on_the_command_line(tmp_path: Path) -> None:
    r = _cli("gateway", "--home", str(tmp_path), "--set", "gateway.api_key=short")
    assert r.returncode == 2 and "gateway.api_key" in r.stderr and "Traceback" not in r.stderr
    bad = _cli("gateway", "--home", str(tmp_path), "--set",
               'trading.allowed_sec_types=["STK",')
    assert bad.returncode == 2 and "trading.allowed_sec_types" in bad.stderr
    from ibhost import config

    cfg = config.load(home=tmp_path, env={}, overrides=config.parse_set(
        ['trading.allowed_sec_types=["STK","OPT"]']))
    assert cfg.trading.allowed_sec_types == ("STK", "OPT")


def test_gateway_port_taken_exits_1_at_once(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _cli("gateway", "--home", str(tmp_path), "--http-port", str(port))
    assert r.returncode == 1 and "cannot listen" in r.stderr
    assert "Traceback" not in r.stderr and "Unclosed" not in r.stderr


def test_ctl_json_after_the_command_and_a_closed_pipe(tmp_path: Path) -> None:
    r = _cli("ctl", "--home", str(tmp_path), "status", "--json")
    assert r.stdout.lstrip().startswith("{") and "unrecognized" not in r.stderr
    p = subprocess.run(f"{sys.executable} -m ibhost.cli ctl --home {tmp_path} status --json"
                       " | head -c 1", shell=True, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


async def test_host_header_must_name_this_gateway(gw: Any) -> None:
    """DNS rebinding: a loopback gateway answers only to loopback names."""
    r = await gw.get("/v1/health", headers={"Host": "evil.example:5001"})
    err = (await r.json())["error"]
    assert r.status == 421 and err["field"] == "Host" and "evil.example" in err["message"]
    # in each family's shape: the bridge's /health, KTRDR's /data/validate
    b = await gw.get("/health", headers={"Host": "evil.example:5001"})
    body = await b.json()
    assert b.status == 421 and body["field"] == "Host" and "evil.example" in body["error"]
    k = await gw.post("/data/validate", json={"symbol": "AAPL"},
                      headers={"Host": "evil.example"})
    assert k.status == 421 and "evil.example" in (await k.json())["detail"]
    for host in ("localhost:5001", "127.0.0.1", "host.docker.internal:5001", "[::1]:5001"):
        assert (await gw.get("/health", headers={"Host": host})).status == 200, host


async def test_files_are_owner_only_and_logs_mask_accounts(tmp_path: Path) -> None:
    import logging
    import os
    import stat

    from ibhost.files import atomic_write
    from ibhost.gateway.idempotency import IdempotencyStore
    from ibhost.proc import MaskAccounts
    from ibhost.tree import prepare_home

    prepare_home(tmp_path / "home")
    for sub in ("run", "log", "data"):
        assert stat.S_IMODE(os.stat(tmp_path / "home" / sub).st_mode) == 0o700
    atomic_write(tmp_path / "x" / "f.json", b"{}")
    assert stat.S_IMODE(os.stat(tmp_path / "x" / "f.json").st_mode) == 0o600
    store = IdempotencyStore(tmp_path / "home" / "data" / "idempotency.sqlite3")
    await store.put("k", "fp", 201, {"orderId": 1})
    for p in (store.path, store.path.with_name(store.path.name + "-wal")):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
    await store.close()
    rec = logging.LogRecord("ib_async.wrapper", logging.INFO, "", 0,
                            "position: %s %s", ("DU1234567", "AAPL"), None)
    MaskAccounts().filter(rec)
    assert rec.getMessage() == "position: DU****567 AAPL"
    conf = (Path(__file__).parents[1] / "supervisord.conf").read_text()
    assert "\numask=077\n" in conf
