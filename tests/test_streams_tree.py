"""Live streams through the supervised tree: quotes resume after ``ibhost ctl wake``,
and order events survive ``kill -9`` of the gateway (a consumer resuming with
Last-Event-ID misses none)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from ibhost.sim import Simulator

from .conftest import eventually
from .test_streams import Sse
from .test_tree import KEY, Tree, running_tree

H = {"X-API-Key": KEY}


async def open_sse(t: Tree, query: str, headers: dict[str, str] | None = None) -> Sse:
    resp = await t.http.get(f"{t.url}/v1/stream?{query}", headers=headers or {},
                            timeout=None)
    assert resp.status == 200, await resp.text()
    return Sse(resp)


async def test_streams_survive_a_wake_and_a_gateway_kill_9(sim: Simulator, tmp_path) -> None:
    async with running_tree(sim, tmp_path) as t:
        # quotes, and a wake (the machine slept): resumed within 5 s, with the gap
        q = await open_sse(t, "quotes=AAPL")
        await q.wait(lambda x: len(x.of("quote")) >= 2)
        t0 = time.monotonic()
        res = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "ibhost.cli", "ctl", "--home", str(t.home), "wake"],
            capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        await q.wait(lambda x: any(e["state"] == "resumed" for e in x.of("status")), 10)
        assert time.monotonic() - t0 < 5.0
        n = len(q.of("quote"))
        await q.wait(lambda x: len(x.of("quote")) > n + 1, 5)
        await q.close()

        # order events, and kill -9 of the gateway
        o = await open_sse(t, "orders=true", H)
        await o.wait(lambda x: len(x.of("subscribed")) == 1)
        st, _ = await t.post("/v1/orders", {"symbol": "AAPL", "action": "BUY",
                                            "quantity": 1, "orderType": "MKT"}, headers=H)
        assert st == 201
        await o.wait(lambda x: any(e["event"] == "commission" for e in x.of("order")))
        last = [eid for e, eid, _ in o.events if e == "order"][-1]
        old = t.pid("gateway")
        os.kill(old, signal.SIGKILL)
        await eventually(lambda: o.done, 5)  # the stream ended with the process
        await o.close()
        # while no gateway runs: an order through the connector, filled
        placed = await t.connector.request("POST", "/orders", json_body={
            "symbol": "MSFT", "action": "SELL", "quantity": 2, "orderType": "MKT"})
        assert placed["symbol"] == "MSFT"
        await t.wait_health("ok", timeout=15)
        assert t.pid("gateway") != old
        back = await open_sse(t, "orders=true", {**H, "Last-Event-ID": str(last)})
        await back.wait(lambda x: any(e["event"] == "commission" and e["symbol"] == "MSFT"
                                      for e in x.of("order")), 10)
        ids = [eid for e, eid, _ in back.events if e == "order"]
        assert ids[0] == last + 1 and ids == list(range(ids[0], ids[-1] + 1))
        assert all(e["symbol"] == "MSFT" for e in back.of("order"))
        await back.close()
