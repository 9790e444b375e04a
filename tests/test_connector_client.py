"""ConnectorClient has one method per connector.sock route, and stays light."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from ibhost.connector.api import setup_routes
from ibhost.connector.client import ROUTES, ConnectorClient
from ibhost.errors import IbhostError
from ibhost.ipc import JOB_HEADER, IpcError
from ibhost.ipc.server import serve_unix, stop_unix


def test_one_method_per_route_of_the_connector() -> None:
    app = web.Application()
    setup_routes(app)
    served = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None}
    declared = set(ROUTES.values())
    assert not served - declared, f"routes without a ConnectorClient method: {served - declared}"
    assert not declared - served, f"ConnectorClient.ROUTES not served: {declared - served}"
    for name in ROUTES:
        fn = getattr(ConnectorClient, name)
        assert inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn), name


def test_importing_it_loads_no_heavy_library() -> None:
    code = ("import sys\nimport ibhost.connector.client\n"
            "print(sorted(m for m in ('aiohttp', 'ib_async', 'ib_insync', 'pandas', 'numpy')"
            " if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


async def echo(request: web.Request) -> web.StreamResponse:
    """What arrived: method, path, query, body and the headers the connector reads."""
    body = await request.json() if request.can_read_body else None
    seen = {"method": request.method, "path": request.path, "query": dict(request.query),
            "body": body, "job": request.headers.get(JOB_HEADER),
            "deadline": request.headers.get("X-Ibhost-Deadline")}
    if request.path == "/historical" and body and body.get("stream"):
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(3):
            await resp.write(b'{"i": %d}\n' % i)
        return resp
    return web.json_response(seen if request.path != "/executions" else [seen],
                             headers={"X-Ibhost-State-Age": "2.5"})


async def test_each_method_calls_its_route_with_the_callers_job_and_deadline(
        tmp_path: Path) -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    sock = str(tmp_path / "c.sock")
    runner = await serve_unix(app, sock)
    client = ConnectorClient(sock, read_timeout=5)
    try:
        plain = json.loads(await client.relay("validate", body={"symbol": "AAPL"},
                                              params={"maxAge": "0"}))
        assert (plain["method"], plain["path"], plain["query"], plain["body"]) == (
            "POST", "/validate", {"maxAge": "0"}, {"symbol": "AAPL"})
        assert plain["job"] is None and plain["deadline"] is None
        ages: list[str] = []
        view = client.for_caller(deadline=7.0, job="key-x/r1",
                                 on_answer=lambda h: ages.append(h["x-ibhost-state-age"]))
        [ex] = json.loads(await view.relay("executions", params={"symbol": "AAPL"}))
        assert (ex["path"], ex["query"], ex["job"]) == (
            "/executions", {"symbol": "AAPL"}, "key-x/r1")
        assert float(ex["deadline"]) == 7.0 and ages == ["2.5"]
        assert json.loads(await view.relay("cancel_order", orderId=12))["path"] == \
            "/orders/12"
        assert (await view.unsubscribe(265598))["path"] == "/subscriptions/265598"
        raw = await view.historical_bytes({"symbol": "AAPL", "columns": True})
        assert b'"key-x/r1"' in raw
        lines = [x async for x in view.historical_lines({"symbol": "AAPL"})]
        assert lines == [{"i": 0}, {"i": 1}, {"i": 2}]
        assert (await client.reconnect("wake: test"))["body"] == {"reason": "wake: test"}
    finally:
        await client.close()
        await stop_unix(runner, sock)


async def test_transport_failures_are_the_callers_own_error(tmp_path: Path) -> None:
    client = ConnectorClient(str(tmp_path / "none.sock"), connect_timeout=0.5)
    with pytest.raises(IpcError):
        await client.health()
    view = client.for_caller(deadline=1.0, job="j",
                             on_failure=lambda e: IbhostError("unavailable", str(e)))
    with pytest.raises(IbhostError, match=r"none\.sock"):
        await view.health()
    with pytest.raises(IbhostError):
        [x async for x in view.historical_lines({"symbol": "AAPL"})]
    await client.close()


async def test_typed_methods_refuse_an_answer_that_is_not_their_model(tmp_path: Path) -> None:
    """An answer with a field of the wrong type, or one the model does not declare,
    fails at the client (naming the field), not three calls later in a caller."""
    answers = {
        "/positions": [{"account": "DU1", "conId": 1, "symbol": "AAPL", "secType": "STK",
                        "position": "ten"}],
        "/pnl": {"account": "DU1", "modelCode": "", "dailyPnL": 1.0, "unrealizedPnL": None,
                 "realizedPnL": None, "surprise": 1},
        "/head-timestamp": {"symbol": "AAPL", "whatToShow": "TRADES",
                            "headTimestamp": "1980-12-12T14:30:00+00:00"},
    }

    async def fixed(request: web.Request) -> web.Response:
        return web.json_response(answers[request.path])

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fixed)
    sock = str(tmp_path / "t.sock")
    runner = await serve_unix(app, sock)
    client = ConnectorClient(sock, read_timeout=5)
    try:
        with pytest.raises(IpcError, match=r"position"):
            await client.positions()
        with pytest.raises(IpcError, match=r"surprise"):
            await client.pnl()
        ts = await client.head_timestamp({"symbol": "AAPL"})
        assert ts.headTimestamp.startswith("1980-12-12") and ts.whatToShow == "TRADES"
    finally:
        await client.close()
        await stop_unix(runner, sock)
