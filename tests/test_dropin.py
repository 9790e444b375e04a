"""What a browser and each seed client can tell at the HTTP level: CORS for listed
origins only, OPTIONS and HEAD, and errors raised before any handler ran (404, 405)
in the shape the path's clients read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ibhost.sim import Simulator

from .connector_fixtures import running_connector
from .test_gateway import KEY, gateway

WEB = "http://localhost:8081"  # wheel-strat's web build (expo start --web)


@pytest.fixture
async def gw(sim: Simulator, tmp_path: Path, aiohttp_client: Any):
    async with running_connector(tmp_path, sim), gateway(
            aiohttp_client, tmp_path, sim, gateway__cors_origins=WEB) as g:
        yield g


async def test_cors_for_a_listed_origin_only(gw: Any) -> None:
    pre = await gw.options("/market-data/AAPL", headers={
        "Origin": WEB, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-api-key"})
    assert pre.status == 204
    assert pre.headers["Access-Control-Allow-Origin"] == WEB
    assert "GET" in pre.headers["Access-Control-Allow-Methods"]
    assert pre.headers["Access-Control-Allow-Headers"] == "x-api-key"
    r = await gw.get("/market-data/AAPL", headers={"Origin": WEB, "X-API-KEY": KEY})
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == WEB
    assert "X-Request-ID" in r.headers["Access-Control-Expose-Headers"]
    # an error answer is readable by the page too (else it sees a network error)
    bad = await gw.get("/market-data/AAPL", headers={"Origin": WEB})
    assert bad.status == 401 and bad.headers["Access-Control-Allow-Origin"] == WEB
    # any other site: no CORS headers, a refused preflight
    evil = "https://example.com"
    r2 = await gw.get("/market-data/AAPL", headers={"Origin": evil, "X-API-KEY": KEY})
    assert "Access-Control-Allow-Origin" not in r2.headers
    pre2 = await gw.options("/order", headers={"Origin": evil,
                                               "Access-Control-Request-Method": "POST"})
    assert pre2.status == 403 and "Access-Control-Allow-Origin" not in pre2.headers
    refused = await pre2.json()
    assert refused["field"] == "Origin" and "cors_origins" in refused["error"]


async def test_cors_is_off_by_default(sim: Simulator, tmp_path: Path,
                                      aiohttp_client: Any) -> None:
    async with running_connector(tmp_path, sim), gateway(aiohttp_client, tmp_path,
                                                         sim) as g:
        pre = await g.options("/health", headers={"Origin": WEB,
                                                  "Access-Control-Request-Method": "GET"})
        assert pre.status == 403
        r = await g.get("/health", headers={"Origin": WEB})
        assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers


async def test_options_and_head(gw: Any) -> None:
    o = await gw.options("/health")
    assert o.status == 204 and set(o.headers["Allow"].split(", ")) >= {"GET", "HEAD",
                                                                     "OPTIONS"}
    assert (await gw.options("/nope")).status == 404
    for path in ("/health", "/", "/v1/health", "/positions"):
        h = await gw.head(path, headers={"X-API-KEY": KEY})
        assert h.status == 200, path
        assert await h.read() == b""


@pytest.mark.parametrize(("method", "path", "status", "body"), [
    ("GET", "/data/nope", 404, {"detail": "Not Found"}),
    ("GET", "/data/historical", 405, {"detail": "Method Not Allowed"}),
    ("GET", "/market-data/AAPL/more", 404, {"error": "Not Found", "code": "not_found"}),
    ("GET", "/order", 405, {"error": "Method Not Allowed", "code": "method_not_allowed"}),
])
async def test_errors_before_any_handler_are_in_the_family_shape(
        gw: Any, method: str, path: str, status: int, body: dict[str, Any]) -> None:
    """KTRDR's clients read FastAPI's {"detail": ...}; wheel-strat's readBridgeErrorDetail
    reads the bridge's {"error": "<text>"} (an object printed "[object Object]")."""
    r = await gw.request(method, path, headers={"X-API-KEY": KEY})
    assert r.status == status and await r.json() == body
    v1 = await gw.get("/v1/nope")
    assert (await v1.json())["error"]["code"] == "not_found"
