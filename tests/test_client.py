"""ibhost.client against a real gateway, connector and simulator."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ibhost.client import (
    AsyncIBHostClient,
    CircuitBreaker,
    CircuitOpenError,
    IBHostClient,
    IBHostError,
    use_host_service,
)
from ibhost.gateway.main import Gateway
from ibhost.sim import Simulator
from ibhost.sim.universe import Query

from .connector_fixtures import make_config, running_connector

KEY = "client-key-0123456789abcd"


@pytest.fixture
async def served(sim: Simulator, tmp_path: Path):
    async with running_connector(tmp_path, sim) as (con, _):
        cfg = make_config(tmp_path, sim, gateway__port=0, gateway__api_key=KEY,
                          trading__enabled=True)
        async with Gateway(cfg) as gw:
            await asyncio.sleep(0.1)
            yield f"http://127.0.0.1:{gw.port}", con


async def test_dataframe_equals_ground_truth(served: Any, sim: Simulator) -> None:
    url, _ = served
    start = dt.datetime(2025, 11, 10, tzinfo=dt.UTC)
    end = dt.datetime(2025, 11, 22, tzinfo=dt.UTC)
    async with AsyncIBHostClient(url) as c:
        df = await c.fetch_historical_data("MSFT", "5m", start, end)
    lst = sim.universe.match(Query(symbol="MSFT", secType="STK", currency="USD"))[0]
    truth = sim.market.bars(lst, int(start.timestamp()), int(end.timestamp()), 300,
                            "TRADES", True)
    expected = pd.DataFrame(
        {"open": [b.open for b in truth], "high": [b.high for b in truth],
         "low": [b.low for b in truth], "close": [b.close for b in truth],
         "volume": [b.volume for b in truth]},
        index=pd.DatetimeIndex(pd.to_datetime([b.start for b in truth], unit="s", utc=True),
                               name="timestamp"))
    assert len(df) == 10 * 78
    pd.testing.assert_frame_equal(df, expected, check_dtype=False, check_freq=False)


async def test_progress_bar_streams_the_same_frame(served: Any) -> None:
    """A big fetch on a terminal shows a progress bar while CSV streams in; the frame
    is the same as the plain answer's (async and sync clients)."""
    import io

    url, _ = served
    start, end = "2025-09-01T00:00:00Z", "2025-11-01T00:00:00Z"
    out = io.StringIO()
    async with AsyncIBHostClient(url) as c:
        plain = await c.fetch_historical_data("AAPL", "1m", start, end, progress=False)
        shown = await c.fetch_historical_data("AAPL", "1m", start, end, progress=out)
    pd.testing.assert_frame_equal(shown, plain, check_dtype=False, check_freq=False)
    bar = out.getvalue()
    assert bar.count("\r[") >= 5 and bar.rstrip().endswith(f"100% {len(plain):,} bars")
    out2 = io.StringIO()
    sync = await asyncio.to_thread(lambda: IBHostClient(url).fetch_historical_data(
        "AAPL", "1m", start, end, progress=out2))
    pd.testing.assert_frame_equal(sync, plain, check_dtype=False, check_freq=False)
    assert "100%" in out2.getvalue()
    with pytest.raises(IBHostError) as ei:
        await asyncio.to_thread(lambda: IBHostClient(url).fetch_historical_data(
            "NOPE", "1m", start, end, progress=io.StringIO()))
    assert ei.value.status == 404


async def test_async_client_calls(served: Any) -> None:
    url, _ = served
    async with AsyncIBHostClient(url, api_key=KEY) as c:
        assert (await c.health())["status"] == "ok"
        v = await c.validate_symbol("AAPL")
        assert v["conId"] == 265598
        assert (await c.head_timestamp("AAPL")).year == 1980
        chain = await c.option_chain("AMZN")
        assert chain["chains"]
        snap = await c.snapshot("AAPL")
        assert snap["bid"] > 0
        with pytest.raises(IBHostError) as ei:
            await c.validate_symbol("NOPE")
        assert ei.value.status == 404 and ei.value.field == "symbol"
        o = await c.place_order("AAPL", "BUY", 1, orderType="MKT", idempotency_key="cl-1")
        again = await c.place_order("AAPL", "BUY", 1, orderType="MKT", idempotency_key="cl-1")
        assert o["permId"] == again["permId"]
        assert len(await c.executions()) == 1
        assert (await c.positions())[0]["position"] == 1
        rest = await c.place_order("AAPL", "BUY", 1, orderType="LMT", limitPrice=1.0)
        assert [x["orderId"] for x in await c.open_orders()] == [rest["orderId"]]
        assert (await c.cancel_order(rest["orderId"]))["status"] == "Cancelled"


async def test_sync_client(served: Any) -> None:
    url, _ = served

    def work() -> tuple[Any, Any]:
        c = IBHostClient(url, api_key=KEY)
        df = c.fetch_historical_data("SPY", "1 day", "2025-11-01", "2025-11-22")
        return df, c.validate_symbol("SPY")

    df, v = await asyncio.to_thread(work)
    assert len(df) == 15 and v["primaryExchange"] == "ARCA"
    assert df.index.tz is not None


async def test_retries_then_circuit_breaker_opens_and_closes(served: Any,
                                                             sim: Simulator) -> None:
    url, con = served
    t = [0.0]
    breaker = CircuitBreaker(threshold=2, reset=5.0, clock=lambda: t[0])
    c = AsyncIBHostClient(url, retries=1, backoff=0.01, breaker=breaker)
    await sim.close_port(30)  # IB gateway down: the host answers 503
    await con.session.wait_state(con.session.state.DOWN, con.session.state.CONNECTING,
                                 timeout=3)
    with pytest.raises(IBHostError) as ei:
        await c.validate_symbol("AAPL")  # 503, retried once: two failures
    assert ei.value.status == 503
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        await c.validate_symbol("AAPL")  # fails fast, no request
    sim_port = sim.port
    await sim._relisten()
    assert sim.port == sim_port
    await con.session.wait_state(con.session.state.READY, timeout=10)
    t[0] += 5.0  # reset elapsed: one probe is let through and closes the circuit
    assert (await c.validate_symbol("AAPL"))["conId"] == 265598
    assert breaker.state == "closed"
    await c.close()


async def test_no_retry_on_4xx_or_unkeyed_orders(served: Any) -> None:
    url, _ = served
    calls = {"n": 0}

    class Counting(AsyncIBHostClient):
        async def request(self, *a: Any, **kw: Any) -> Any:  # type: ignore[override]
            calls["n"] += 1
            return await super().request(*a, **kw)

    from ibhost.client import _Policy

    assert _Policy.retryable("POST", "/v1/orders", {}) is False
    assert _Policy.retryable("POST", "/v1/orders", {"Idempotency-Key": "k"}) is True
    assert _Policy.retryable("DELETE", "/v1/orders/1", {}) is False
    async with AsyncIBHostClient(url, retries=3, backoff=0.01) as c:
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(IBHostError) as ei:
            await c.fetch_historical_data("AAPL", "7m", "2025-11-01", "2025-11-02")
        assert ei.value.status == 400 and ei.value.field == "timeframe"
        assert asyncio.get_running_loop().time() - t0 < 0.5  # answered, not retried


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USE_IB_HOST_SERVICE", "false")
    assert use_host_service() is False
    monkeypatch.setenv("USE_IB_HOST_SERVICE", "TRUE")
    assert use_host_service() is True
    monkeypatch.setenv("IB_HOST_SERVICE_URL", "http://host.docker.internal:5001/")
    assert AsyncIBHostClient().base_url == "http://host.docker.internal:5001"
