"""The wheel-strat bridge contract, read the way its clients read it
(``services/trading.ts``, ``functions/src/lib/ibkrSchemas.ts``,
``scripts/diagnostics/bridge_latency_probe.py``): paths, X-API-KEY rules, status
codes, key names and types."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from ibhost.sim import Simulator

from .connector_fixtures import running_connector, wait_until
from .test_gateway import KEY, gateway, trading_stack

H = {"X-API-KEY": KEY}  # the bridge's spelling; HTTP headers are case-insensitive


@pytest.fixture
async def gw(sim: Simulator, tmp_path: Path, aiohttp_client: Any):
    async with trading_stack(aiohttp_client, tmp_path, sim) as g:
        yield g


def number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def pick_expiration(expirations: list[str], today: dt.date, lo: int = 14,
                    hi: int = 28) -> str:
    """The probe's choice: nearest expiry within 14-28 days, else the nearest future one."""
    # ``today``: the probe's date, which is IB's date (the simulator's pinned one here)
    dtes = [((dt.datetime.strptime(e, "%Y%m%d").date() - today).days, e) for e in expirations]
    inside = sorted(x for x in dtes if lo <= x[0] <= hi)
    return (inside or sorted(x for x in dtes if x[0] >= 0))[0][1]


async def test_probe_flow_market_chain_quote(gw: Any, sim: Simulator) -> None:
    r = await gw.get("/market-data/MSFT", headers=H)
    q = await r.json()
    assert r.status == 200 and q["symbol"] == "MSFT" and q["source"] == "realtime"
    assert set(q) >= {"last", "bid", "ask", "high", "low", "volume", "close"}
    price = q["last"] or q["bid"] or q["close"]
    assert number(price) and price > 0
    chain = await (await gw.get("/option-chain/MSFT", headers=H)).json()
    assert chain["symbol"] == "MSFT" and chain["tradingClass"] == "MSFT"
    assert all(isinstance(e, str) and len(e) == 8 for e in chain["expirations"])
    assert all(number(s) for s in chain["strikes"]) and chain["multiplier"] == "100"
    exp = pick_expiration(chain["expirations"], sim.now_dt().date())
    strike = min((s for s in chain["strikes"] if s >= price * 1.05), default=None)
    assert strike is not None
    r = await gw.post("/option-quote", headers=H, json={
        "symbol": "MSFT", "expiration": exp, "strike": strike, "right": "C"})
    oq = await r.json()
    assert r.status == 200, oq
    assert number(oq["bid"]) and number(oq["ask"]) and oq["ask"] >= oq["bid"] > 0
    assert number(oq["undPrice"]) and oq["undPrice"] > 0
    assert number(oq["delta"]) and 0 < oq["delta"] < 1 and number(oq["impliedVol"])
    bad = await gw.post("/option-quote", headers=H, json={"symbol": "MSFT", "strike": 400,
                                                           "right": "C"})
    assert bad.status == 400 and "expiration" in (await bad.json())["error"]


async def test_key_rules(gw: Any) -> None:
    for path in ("/health", "/ping", "/diag"):
        assert (await gw.get(path)).status == 200, path
    for path in ("/market-data/AAPL", "/positions", "/executions", "/orders",
                 "/account-summary"):
        r = await gw.get(path)
        assert r.status == 401 and (await r.json())["error"] == "Unauthorized", path
        r = await gw.get(path, headers={"X-API-KEY": "wrong-key-0123456789"})
        assert r.status == 401, path
    ping = await (await gw.get("/ping")).json()
    assert ping["status"] == "ok" and isinstance(ping["timestamp"], int)


async def test_health_fields(gw: Any) -> None:
    r = await gw.get("/health?connect=false", headers=H)
    h = await r.json()
    assert r.status == 200 and h["status"] == "ok" and h["connected"] is True
    assert h["ready"] is True and h["clientId"] == 1 and h["host"] == "127.0.0.1"
    assert isinstance(h["port"], int) and h["tradingMode"] == "paper"
    # without a key: what the bridge's clients read, not where IB is or who we are
    open_ = await (await gw.get("/health?connect=true")).json()
    assert open_["connected"] is True and open_["ready"] is True
    assert open_["status"] == "ok" and open_["tradingMode"] == "paper"
    assert not {"clientId", "host", "port", "lastIbErrorMessage", "connector"} & set(open_)
    d = await (await gw.get("/diag")).json()
    assert d["ibConnected"] is True and isinstance(d["uptimeSeconds"], int)
    assert "account" not in str(d).lower() and "clientId" not in d["diag"]
    keyed = await (await gw.get("/diag", headers=H)).json()
    assert keyed["diag"]["clientId"] == 1


async def test_market_data_falls_back_to_delayed(gw: Any, sim: Simulator) -> None:
    sim.set_no_subscription("AMZN", 354)
    q = await (await gw.get("/market-data/AMZN", headers=H)).json()
    assert q["source"] in ("frozen", "delayed") and number(q["last"] or q["close"])
    none = await gw.get("/market-data/ZZZZ", headers=H)
    assert none.status == 404 and (await none.json())["error"] == "No market data"
    batch = await (await gw.post("/market-data/batch", headers=H, json={
        "symbols": ["AAPL", "msft", "ZZZZ"]})).json()
    assert sorted(x["symbol"] for x in batch["results"]) == ["AAPL", "MSFT"]
    # "batch" is never taken for a symbol: GET on it is 405 naming POST
    get_batch = await gw.get("/market-data/batch", headers=H)
    assert get_batch.status == 405 and get_batch.headers["Allow"] == "POST"
    empty = await (await gw.post("/market-data/batch", headers=H, json={})).json()
    assert empty == {"results": []}
    bad = await gw.post("/market-data/batch", headers=H, json={"symbols": "AAPL"})
    assert bad.status == 400 and isinstance((await bad.json())["error"], str)


async def test_historical(gw: Any) -> None:
    r = await gw.post("/historical", headers=H, json={
        "symbol": "AAPL", "duration": "5 D", "barSize": "1 day",
        "endDateTime": "20251122 00:00:00 UTC", "useRTH": "true"})
    body = await r.json()
    assert r.status == 200 and body["symbol"] == "AAPL"
    dates = [b["date"] for b in body["bars"]]
    assert dates == ["2025-11-17", "2025-11-18", "2025-11-19", "2025-11-20", "2025-11-21"]
    b = body["bars"][0]
    assert set(b) == {"date", "open", "high", "low", "close", "volume", "average"}
    v1 = await (await gw.post("/v1/data/historical?format=records", json={
        "symbol": "AAPL", "barSize": "1 day", "duration": "5 D",
        "end": "2025-11-22T00:00:00Z"})).json()
    assert [x["close"] for x in body["bars"]] == [x["close"] for x in v1["bars"]]
    hourly = await (await gw.post("/historical", headers=H, json={
        "symbol": "AAPL", "duration": "1 D", "barSize": "1 hour",
        "endDateTime": "20251121 21:00:00 UTC"})).json()
    assert hourly["bars"][0]["date"].startswith("2025-11-21 14:30:00")
    bad = await gw.post("/historical", headers=H, json={"symbol": "AAPL",
                                                         "endDateTime": "tomorrow"})
    assert bad.status == 400 and "endDateTime" in (await bad.json())["error"]
    # wheel-strat's intraday sync: 1 min over 2 D is more than IB's step-size rules
    # allow in one request; the bridge passed it on and got nothing, ibhost chunks it
    intraday = await gw.post("/historical", headers=H, json={
        "symbol": "AAPL", "duration": "2 D", "barSize": "1 min",
        "endDateTime": "20251121 21:00:00 UTC", "useRTH": "true"})
    bars = (await intraday.json())["bars"]
    assert intraday.status == 200
    days = sorted({b["date"][:10] for b in bars})
    assert days == ["2025-11-20", "2025-11-21"] and len(bars) == 2 * 390, (days, len(bars))
    assert [b["date"] for b in bars] == sorted(b["date"] for b in bars)
    short = await gw.post("/historical", headers=H, json={
        "symbol": "AAPL", "duration": "60 S", "barSize": "1 day"})
    assert short.status == 400 and "duration" in (await short.json())["error"]


async def test_orders_executions_and_account(gw: Any, sim: Simulator) -> None:
    chain = await (await gw.get("/option-chain/AAPL", headers=H)).json()
    exp = pick_expiration(chain["expirations"], sim.now_dt().date())
    # an option order with a far limit rests; expiration picks the contract (no 409)
    r = await gw.post("/order", headers=H, json={
        "symbol": "AAPL", "action": "SELL", "quantity": 1, "orderType": "LMT",
        "limitPrice": 99.0, "secType": "OPT", "uid": "user-1", "strike": 230.0,
        "right": "P", "expiration": exp})
    opt = await r.json()
    assert r.status == 200, opt
    assert number(opt["orderId"]) and opt["status"] in ("Submitted", "PreSubmitted")
    orders = await (await gw.get("/orders", headers=H)).json()
    mine = [o for o in orders["orders"] if o["orderId"] == opt["orderId"]]
    assert orders["count"] == len(orders["orders"]) and mine
    assert mine[0]["orderRef"] == "user-1" and mine[0]["expiration"] == exp
    assert mine[0]["right"] == "P" and mine[0]["lmtPrice"] == 99.0
    c = await (await gw.post("/order/cancel", headers=H,
                             json={"permId": mine[0]["permId"]})).json()
    assert c["orderId"] == opt["orderId"] and c["status"] in ("Cancelled", "PendingCancel")
    missing = await gw.post("/order/cancel", headers=H, json={})
    assert missing.status == 400
    # marketable stock orders from one user, two of them identical: uid is the user,
    # not an order key, so all three are placed (as the bridge did), all matched by
    # orderRef
    ids = []
    for qty in (1, 1, 2):
        r = await gw.post("/order", headers=H, json={
            "symbol": "AAPL", "action": "BUY", "quantity": qty, "orderType": "LMT",
            "limitPrice": 400.0, "secType": "STK", "uid": "user-2"})
        assert r.status == 200
        ids.append((await r.json())["orderId"])
        assert "Idempotent-Replayed" not in r.headers
    assert len(set(ids)) == 3

    async def fills() -> list[dict[str, Any]]:
        ex = await (await gw.get("/executions?lookbackDays=1", headers=H)).json()
        assert ex["count"] == len(ex["executions"])
        return [e for e in ex["executions"] if e["orderRef"] == "user-2"]

    mine_fills: list[dict[str, Any]] = []

    async def two() -> bool:
        mine_fills[:] = await fills()
        return len(mine_fills) == 3

    for _ in range(50):
        if await two():
            break
    assert len(mine_fills) == 3
    e = mine_fills[0]
    assert e["side"] == "BOT" and e["shares"] in (1, 2) and number(e["avgPrice"])
    assert number(e["price"]) and number(e["cumQty"]) and e["secType"] == "STK"
    assert isinstance(e["time"], str) and dt.datetime.fromisoformat(e["time"])
    pos = await (await gw.get("/positions", headers=H)).json()
    aapl = [p for p in pos["positions"] if p["symbol"] == "AAPL" and p["secType"] == "STK"]
    assert aapl and aapl[0]["quantity"] == 4 and aapl[0]["companyName"] == "APPLE INC"

    async def in_portfolio() -> Any:
        port = await (await gw.get("/portfolio", headers=H)).json()
        return [p for p in port["positions"] if p["symbol"] == "AAPL"]

    item = (await wait_until_async(in_portfolio))[0]
    assert number(item["marketPrice"]) and number(item["marketValue"])
    assert number(item["unrealizedPnl"])
    summ = await (await gw.get("/account-summary", headers=H)).json()
    assert isinstance(summ["AccountCode"], str) and summ["AccountCode"]
    for tag in ("NetLiquidation", "TotalCashValue", "BuyingPower", "AvailableFunds",
                "ExcessLiquidity", "RealizedPnL", "UnrealizedPnL"):
        assert number(summ[tag]), tag
    pnl = await (await gw.get("/pnl", headers=H)).json()
    assert set(pnl) == {"dailyPnL", "unrealizedPnL", "realizedPnL", "value"}
    assert number(pnl["unrealizedPnL"]) and number(pnl["dailyPnL"])
    single = await (await gw.get("/pnl-single?conId=265598", headers=H)).json()
    assert single["position"] == 4 and number(single["marketValue"])
    no_con = await gw.get("/pnl-single", headers=H)
    assert no_con.status == 400 and "conId" in (await no_con.json())["error"]


async def wait_until_async(check: Any, timeout: float = 5.0) -> Any:
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_refused_order_and_down_connector(sim: Simulator, tmp_path: Path,
                                                aiohttp_client: Any) -> None:
    body = {"symbol": "AAPL", "action": "BUY", "quantity": 1, "limitPrice": 1.0,
            "uid": "u"}
    async with running_connector(tmp_path, sim), gateway(aiohttp_client, tmp_path, sim) as g:
        r = await g.post("/order", headers=H, json=body)
        err = await r.json()
        assert r.status == 403 and isinstance(err["error"], str)
        assert err["error"].startswith("trading_disabled")
    async with gateway(aiohttp_client, tmp_path / "down", sim) as g:
        await wait_until(lambda: True)
        h = await g.get("/health?connect=false")
        body_h = await h.json()
        assert h.status == 200 and body_h["status"] == "disconnected"
        assert body_h["connected"] is False
        r = await g.get("/market-data/AAPL", headers=H)
        busy = await r.json()
        assert r.status == 503 and busy["error"] == "Bridge busy"
        assert busy["reason"] == "not-ready"


async def test_order_retry_with_idempotency_key(gw: Any) -> None:
    """The bridge's clients may add Idempotency-Key: a retry answers the first order."""
    body = {"symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT",
            "limitPrice": 1.0, "secType": "STK", "uid": "user-3"}
    hdrs = {**H, "Idempotency-Key": "wheel-retry-1"}
    first = await gw.post("/order", headers=hdrs, json=body)
    again = await gw.post("/order", headers=hdrs, json=body)
    a, b = await first.json(), await again.json()
    assert first.status == again.status == 200 and a["orderId"] == b["orderId"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    orders = await (await gw.get("/orders", headers=H)).json()
    assert sum(o["orderRef"] == "user-3" for o in orders["orders"]) == 1


async def test_an_order_re_placed_after_its_cancel_is_working_again(gw: Any,
                                                                     sim: Simulator) -> None:
    """The app's user places an order, cancels it and sends the same order again within
    two minutes: a new order is placed and works at IB (uid never deduplicates)."""
    body = {"symbol": "MSFT", "action": "BUY", "quantity": 1, "orderType": "LMT",
            "limitPrice": 1.0, "secType": "STK", "uid": "user-4"}
    first = await (await gw.post("/order", headers=H, json=body)).json()
    c = await gw.post("/order/cancel", headers=H, json={"orderId": first["orderId"]})
    assert c.status == 200
    again = await gw.post("/order", headers=H, json=body)
    second = await again.json()
    assert again.status == 200 and "Idempotent-Replayed" not in again.headers
    assert second["orderId"] != first["orderId"]
    assert second["status"] in ("Submitted", "PreSubmitted")
    working = [o for o in (await (await gw.get("/orders", headers=H)).json())["orders"]
               if o["orderRef"] == "user-4" and o["status"] in ("Submitted", "PreSubmitted")]
    assert [o["orderId"] for o in working] == [second["orderId"]]


async def test_batch_chains_and_quotes_answer_per_item(gw: Any, sim: Simulator) -> None:
    """wheel-strat's callers POST /option-chain/batch {symbols} and /option-quote/batch
    {contracts} (and fall back to one request each when missing): every item answered
    on its own, a bad one left out of results and named in errors."""
    r = await gw.post("/option-chain/batch", headers=H,
                      json={"symbols": ["AAPL", "msft", "ZZZZ", "AAPL"]})
    chains = await r.json()
    assert r.status == 200
    assert [c["symbol"] for c in chains["results"]] == ["AAPL", "MSFT"]
    assert [e["item"] for e in chains["errors"]] == ["ZZZZ"]
    single = await (await gw.get("/option-chain/AAPL", headers=H)).json()
    assert chains["results"][0] == single
    exp = pick_expiration(single["expirations"], sim.now_dt().date())
    near = min(single["strikes"], key=lambda k: abs(k - 240))
    contracts = [{"symbol": "AAPL", "expiration": exp, "strike": near, "right": r}
                 for r in ("C", "P")]
    contracts.append({"symbol": "AAPL", "expiration": exp, "strike": 0.5, "right": "C"})
    q = await gw.post("/option-quote/batch", headers=H, json={"contracts": contracts})
    quotes = await q.json()
    assert q.status == 200 and len(quotes["results"]) == 2 and len(quotes["errors"]) == 1
    for got, want in zip(quotes["results"], contracts, strict=False):
        assert (got["symbol"], got["expiration"], got["strike"], got["right"]) == (
            want["symbol"], want["expiration"], want["strike"], want["right"])
        assert number(got["bid"]) and number(got["ask"]) and number(got["delta"])
    bad = await gw.post("/option-quote/batch", headers=H,
                        json={"contracts": [{"symbol": "AAPL", "expiration": exp,
                                             "right": "C"}]})
    assert bad.status == 400 and "contracts[0].strike" in (await bad.json())["error"]
    too_many = await gw.post("/option-chain/batch", headers=H,
                             json={"symbols": ["AAPL"] * 101})
    assert too_many.status == 400
    empty = await (await gw.post("/option-quote/batch", headers=H, json={})).json()
    assert empty == {"results": [], "errors": []}
    get_batch = await gw.get("/option-chain/batch", headers=H)  # never a symbol
    assert get_batch.status == 405 and get_batch.headers["Allow"] == "POST"


async def test_a_batch_asks_for_each_underlying_once(gw: Any, sim: Simulator) -> None:
    """Options on one stock share its quote: a batch of ten asks IB for ten option
    snapshots and one underlying's, not ten of each."""
    chain = await (await gw.get("/option-chain/MSFT", headers=H)).json()
    exp = pick_expiration(chain["expirations"], sim.now_dt().date())
    strikes = sorted(chain["strikes"], key=lambda k: abs(k - 500))[:5]
    contracts = [{"symbol": "MSFT", "expiration": exp, "strike": k, "right": r}
                 for k in strikes for r in ("C", "P")]
    before = sim.state()["stats"]["requests"].get("reqMktData", 0)
    r = await gw.post("/option-quote/batch", headers=H, json={"contracts": contracts})
    quotes = await r.json()
    assert r.status == 200 and len(quotes["results"]) == 10, quotes["errors"]
    assert all(q["undPrice"] for q in quotes["results"])
    asked = sim.state()["stats"]["requests"]["reqMktData"] - before
    assert 11 <= asked <= 10 + 3, asked  # the underlying: one tier, at most three


async def test_executions_since(gw: Any, sim: Simulator) -> None:
    """GET /executions?since=ISO: wheel-strat's callers send it; the bridge ignored it."""
    r = await gw.post("/order", headers=H, json={
        "symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT",
        "limitPrice": 400.0, "secType": "STK", "uid": "user-5"})
    assert r.status == 200

    async def mine(q: str) -> list[dict[str, Any]]:
        ex = await (await gw.get(f"/executions{q}", headers=H)).json()
        return [e for e in ex["executions"] if e["orderRef"] == "user-5"]

    assert await wait_until_async(lambda: mine(""))
    before = (sim.now_dt() - dt.timedelta(hours=1)).isoformat()
    after = (sim.now_dt() + dt.timedelta(hours=1)).isoformat()
    assert len(await mine(f"?since={before.replace('+', '%2B')}")) == 1
    assert await mine(f"?since={after.replace('+', '%2B')}") == []
    for q in ("?since=soon", "?since="):
        bad = await gw.get(f"/executions{q}", headers=H)
        assert bad.status == 400 and "since" in (await bad.json())["error"]
    assert len(await mine("?since=0040-08-20T08:59:47Z")) == 1  # before 1970: everything


def test_a_bare_symbol_is_a_stock_but_for_the_bridges_indices() -> None:
    """The bridge's get_contract: VIX, SPX, NDX, RUT and VIXW are indices (the VIX
    family on CBOE), anything else a US stock on SMART (symbols.py, beside KTRDR's)."""
    from ibhost.symbols import bridge_contract

    assert bridge_contract("vix") == {"symbol": "VIX", "secType": "IND", "exchange": "CBOE",
                                      "currency": "USD"}
    assert bridge_contract("VIXW")["exchange"] == "CBOE"
    assert [bridge_contract(s)["secType"] for s in ("SPX", "NDX", "RUT")] == ["IND"] * 3
    assert bridge_contract("SPX")["exchange"] == "SMART"
    assert bridge_contract("aapl") == {"symbol": "AAPL", "secType": "STK", "exchange": "SMART",
                                       "currency": "USD"}
    assert bridge_contract("VIXY")["secType"] == "STK"  # an ETF, not the index
