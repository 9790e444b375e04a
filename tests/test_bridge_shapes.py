"""The bridge's answers field by field, with the types its ib_insync objects gave
(``dart-technologies/wheel-strat`` ``scripts/bridge/ibkr_bridge.py``): ``""``, ``0.0``
and ``0`` where ib_insync's Contract, Execution and OrderState held their defaults,
the multiplier and an option chain's ``underlyingConId`` as IB's text, the bridge's
rule for an option quote with no bid, and ``GET /diag/logs``. Where the bridge was
broken (its 500s, IB's unset 1.797e308) ibhost's answers are kept: see
docs/migrating.md."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from ibhost.gateway.app import init_app
from ibhost.sim import Simulator

from .connector_fixtures import make_config, running_connector
from .test_bridge_contract import H, number, pick_expiration, wait_until_async
from .test_gateway import KEY, trading_stack

CONTRACT_TYPES = {"secType": str, "right": str, "strike": float, "expiration": str,
                  "localSymbol": str, "conId": int, "multiplier": str}


@pytest.fixture
async def gw(sim: Simulator, tmp_path: Path, aiohttp_client: Any):
    async with trading_stack(aiohttp_client, tmp_path, sim) as g:
        yield g


def typed(item: dict[str, Any], types: dict[str, type]) -> None:
    """Every named field is there with exactly the bridge's type (an int is not a str,
    a bool is not a number; a float field may be any JSON number)."""
    for k, t in types.items():
        assert k in item, k
        v = item[k]
        if t is float:
            assert number(v), (k, v)
        else:
            assert type(v) is t, (k, v)


def no_nulls(item: dict[str, Any], *allowed: str) -> None:
    assert not [k for k, v in item.items() if v is None and k not in allowed], item


async def _chain(gw: Any, sim: Simulator, symbol: str = "AAPL") -> tuple[dict[str, Any], str]:
    chain = await (await gw.get(f"/option-chain/{symbol}", headers=H)).json()
    return chain, pick_expiration(chain["expirations"], sim.now_dt().date())


async def test_option_chain_types(gw: Any) -> None:
    r = await gw.get("/option-chain/aapl", headers=H)
    chain = await r.json()
    assert r.status == 200
    typed(chain, {"symbol": str, "expirations": list, "strikes": list, "multiplier": str,
                  "exchange": str, "currency": str, "tradingClass": str,
                  "underlyingConId": str})
    # the bridge echoed the path's symbol; IB's texts: "100" and the conId's digits
    assert chain["symbol"] == "aapl" and chain["multiplier"] == "100"
    assert chain["underlyingConId"] == "265598" and chain["currency"] == "USD"
    batch = await (await gw.post("/option-chain/batch", headers=H,
                                 json={"symbols": ["AAPL"]})).json()
    assert batch["results"][0]["underlyingConId"] == "265598"


async def test_market_data_types(gw: Any) -> None:
    r = await gw.get("/market-data/msft", headers=H)
    q = await r.json()
    assert r.status == 200 and q["symbol"] == "msft"  # as given, like the bridge
    assert set(q) == {"symbol", "last", "bid", "ask", "high", "low", "volume", "close",
                      "source"}
    typed(q, {"symbol": str, "last": float, "bid": float, "ask": float, "high": float,
              "low": float, "volume": float, "close": float, "source": str})
    batch = await (await gw.post("/market-data/batch", headers=H,
                                 json={"symbols": ["msft"]})).json()
    assert [x["symbol"] for x in batch["results"]] == ["MSFT"]  # batch: upper case


async def _deep_otm_call(gw: Any, sim: Simulator) -> dict[str, Any]:
    """A listed call so far out of the money that IB's (the simulator's) bid is 0:
    ask 0.02, last 0.01."""
    chain, exp = await _chain(gw, sim)
    for strike in sorted(chain["strikes"], reverse=True):
        spec = {"symbol": "AAPL", "secType": "OPT", "lastTradeDateOrContractMonth": exp,
                "strike": strike, "right": "C", "exchange": "SMART", "currency": "USD",
                "marketDataType": 3}
        raw = await (await gw.post("/v1/market/snapshot", headers=H, json=spec)).json()
        if raw.get("bid") == 0 and number(raw.get("ask")) and raw["ask"] > 0:
            return {"expiration": exp, "strike": strike, "raw": raw}
    raise AssertionError("no zero-bid call in the chain")


async def test_zero_bid_option_quote_takes_the_bridges_rule(gw: Any, sim: Simulator) -> None:
    """The bridge (apply_option_fallbacks): a bid that is not a price (> 0) is replaced,
    bid and ask both, by ``last or close`` when that is a price."""
    otm = await _deep_otm_call(gw, sim)
    raw = otm["raw"]
    want = raw["last"] or raw["close"]
    assert number(want) and want > 0 and raw["ask"] != want  # the case the rule changes
    body = {"symbol": "AAPL", "expiration": otm["expiration"], "strike": otm["strike"],
            "right": "C"}
    r = await gw.post("/option-quote", headers=H, json=body)
    q = await r.json()
    assert r.status == 200, q
    assert q["bid"] == q["ask"] == want
    typed(q, {"symbol": str, "bid": float, "ask": float, "last": float, "close": float,
              "undPrice": float, "source": str})
    b = await (await gw.post("/option-quote/batch", headers=H,
                             json={"contracts": [body]})).json()
    assert b["results"][0]["bid"] == b["results"][0]["ask"] == want
    # a quote with a bid is left as IB gave it (ask above bid)
    chain, exp = await _chain(gw, sim)
    near = min(chain["strikes"], key=lambda k: abs(k - 240))
    live = await (await gw.post("/option-quote", headers=H, json={
        "symbol": "AAPL", "expiration": exp, "strike": near, "right": "C"})).json()
    assert live["bid"] > 0 and live["ask"] > live["bid"]


async def test_stock_order_and_execution_types(gw: Any) -> None:
    r = await gw.post("/order", headers=H, json={
        "symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT",
        "limitPrice": 400.0, "secType": "STK", "uid": "shape-1"})
    assert r.status == 200
    rest = await gw.post("/order", headers=H, json={
        "symbol": "MSFT", "action": "BUY", "quantity": 1, "orderType": "LMT",
        "limitPrice": 1.0, "secType": "STK", "uid": "shape-2"})
    assert rest.status == 200

    async def fill() -> list[dict[str, Any]]:
        ex = await (await gw.get("/executions", headers=H)).json()
        return [e for e in ex["executions"] if e["orderRef"] == "shape-1"]

    e = (await wait_until_async(fill))[0]
    typed(e, {"execId": str, "symbol": str, "side": str, "shares": float, "price": float,
              "commission": float, "time": str, "orderRef": str, **CONTRACT_TYPES})
    # a stock: ib_insync's Contract defaults, never null
    assert (e["right"], e["strike"], e["expiration"], e["multiplier"]) == ("", 0.0, "", "")
    assert e["conId"] == 265598 and e["secType"] == "STK"
    # str(datetime) in UTC, as the bridge wrote an execution's time
    assert e["time"][10] == " " and e["time"].endswith("+00:00")
    assert dt.datetime.fromisoformat(e["time"]).tzinfo is not None
    no_nulls(e)

    orders = await (await gw.get("/orders", headers=H)).json()
    o = next(x for x in orders["orders"] if x["orderRef"] == "shape-2")
    typed(o, {"orderId": int, "permId": int, "status": str, "action": str,
              "orderType": str, "lmtPrice": float, "totalQuantity": float,
              "remaining": float, "filled": float, "avgFillPrice": float, "tif": str,
              "orderRef": str, "symbol": str, "currency": str, "exchange": str,
              **CONTRACT_TYPES})
    assert (o["right"], o["strike"], o["expiration"], o["multiplier"]) == ("", 0.0, "", "")
    # kept from ibhost: the bridge leaked IB's unset 1.797e308 here (a LMT order has no
    # aux price; IB's OrderState has no margin change outside what-if). The bridge read
    # the account from an object that has none (always null); ibhost gives the order's
    # account when IB names it
    assert o["auxPrice"] is None and o["initMarginChange"] is None
    assert o["account"] is None or isinstance(o["account"], str)
    no_nulls(o, "auxPrice", "initMarginChange", "account")

    pos = await (await gw.get("/positions", headers=H)).json()
    p = next(x for x in pos["positions"] if x["symbol"] == "AAPL")
    typed(p, {"account": str, "symbol": str, "quantity": float, "avgCost": float,
              **CONTRACT_TYPES})
    assert (p["right"], p["strike"], p["expiration"], p["multiplier"]) == ("", 0.0, "", "")
    assert "companyName" in p  # the long name once looked up, else null (as the bridge)

    async def held() -> list[dict[str, Any]]:
        port = await (await gw.get("/portfolio", headers=H)).json()
        return [x for x in port["positions"] if x["symbol"] == "AAPL"]

    item = (await wait_until_async(held))[0]
    typed(item, {"account": str, "symbol": str, "quantity": float, "avgCost": float,
                 "marketPrice": float, "marketValue": float, "realizedPnl": float,
                 "unrealizedPnl": float, **CONTRACT_TYPES})
    assert item["multiplier"] == "" and item["strike"] == 0.0
    no_nulls(item)


async def test_option_order_and_position_types(gw: Any, sim: Simulator) -> None:
    chain, exp = await _chain(gw, sim)
    near = min(chain["strikes"], key=lambda k: abs(k - 240))
    q = await (await gw.post("/option-quote", headers=H, json={
        "symbol": "AAPL", "expiration": exp, "strike": near, "right": "C"})).json()
    r = await gw.post("/order", headers=H, json={  # marketable, inside max_notional
        "symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT",
        "limitPrice": round(q["ask"] * 1.2, 2), "secType": "OPT", "uid": "shape-3",
        "strike": near, "right": "C", "expiration": exp})
    assert r.status == 200, await r.json()

    async def fill() -> list[dict[str, Any]]:
        ex = await (await gw.get("/executions", headers=H)).json()
        return [e for e in ex["executions"] if e["orderRef"] == "shape-3"]

    e = (await wait_until_async(fill))[0]
    typed(e, CONTRACT_TYPES)
    assert (e["secType"], e["right"], e["strike"], e["expiration"], e["multiplier"]) == (
        "OPT", "C", near, exp, "100")

    async def held() -> list[dict[str, Any]]:
        pos = await (await gw.get("/positions", headers=H)).json()
        return [x for x in pos["positions"] if x["secType"] == "OPT"]

    p = (await wait_until_async(held))[0]
    typed(p, CONTRACT_TYPES)
    assert p["multiplier"] == "100" and p["companyName"] is None  # not a stock


async def test_account_summary_and_pnl_types(gw: Any) -> None:
    summ = await (await gw.get("/account-summary", headers=H)).json()
    for tag in ("NetLiquidation", "TotalCashValue", "BuyingPower", "AvailableFunds",
                "ExcessLiquidity"):
        assert number(summ[tag]), tag
    # kept from ibhost: the bridge's /pnl read PnL.value, which ib_insync's PnL does not
    # have (a 500 every time); ibhost answers its fields, value null
    r = await gw.get("/pnl", headers=H)
    pnl = await r.json()
    assert r.status == 200 and pnl["value"] is None


async def test_diag_types(gw: Any) -> None:
    d = await (await gw.get("/diag")).json()
    typed(d, {"timestamp": str, "uptimeSeconds": int, "ibConnected": bool, "ready": bool,
              "epoch": int, "diag": dict, "locks": dict, "caches": dict})
    assert d["timestamp"].endswith("Z") and d["epoch"] >= 1
    typed(d["diag"], {"heartbeatFailures": int, "reconnectAttempts": int,
                      "lastConnectAt": str})
    assert d["diag"]["lastConnectAt"].endswith("Z")
    assert dt.datetime.fromisoformat(d["diag"]["lastConnectAt"].removesuffix("Z"))
    assert "lastIbErrorMessage" not in d["diag"] and "clientId" not in d["diag"]


async def test_diag_logs(gw: Any) -> None:
    log = logging.getLogger("ibhost.gateway.test")
    log.setLevel(logging.INFO)
    try:
        log.warning("order for account DU1234567 refused (key %s)", KEY)
        log.info("second line")
    finally:
        log.setLevel(logging.NOTSET)
    r = await gw.get("/diag/logs")
    assert r.status == 401 and (await r.json())["error"] == "Unauthorized"
    r = await gw.get("/diag/logs?limit=2", headers=H)
    body = await r.json()
    assert r.status == 200
    # the bridge's /diag/logs answered its /diag body: the same keys, and the lines
    assert set(body) == set(await (await gw.get("/diag")).json()) | {"logs"}
    lines = body["logs"]
    assert len(lines) == 2 and [x["message"] for x in lines][-1] == "second line"
    first = lines[0]
    typed(first, {"time": str, "level": str, "logger": str, "message": str})
    assert first["level"] == "WARNING" and first["logger"] == "ibhost.gateway.test"
    assert first["time"].endswith("Z")
    # the key never; the account to a caller with a key
    assert KEY not in str(body) and "***" in first["message"]
    assert "DU1234567" in first["message"]
    assert (await (await gw.get("/diag/logs?limit=0", headers=H)).json())["logs"] == []
    bad = await gw.get("/diag/logs?limit=many", headers=H)
    assert bad.status == 400 and "limit" in (await bad.json())["error"]


async def test_diag_logs_without_keys_hides_accounts(sim: Simulator, tmp_path: Path,
                                                     aiohttp_client: Any) -> None:
    """With no key configured anyone local may read them (as the bridge): account ids
    are masked then."""
    async with running_connector(tmp_path, sim):
        g = await aiohttp_client(init_app(make_config(tmp_path, sim)))
        logging.getLogger("ibhost.gateway.test").warning("fill for DU1234567")
        r = await g.get("/diag/logs?limit=5")
        body = await r.json()
        assert r.status == 200
        mine = [x["message"] for x in body["logs"] if x["logger"] == "ibhost.gateway.test"]
        assert mine == ["fill for DU***"] and "DU1234567" not in str(body)
