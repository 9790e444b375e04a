"""A burst of orders and cancels stays inside IB's 50 messages a second: the gateway
never earns an error 100 (on a real gateway, three end the session) and the
connection stays up, with every order answered."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ibhost.sim import Simulator

from .connector_fixtures import running_connector
from .test_gateway import H, gateway


async def test_a_burst_of_100_orders_and_their_cancels_never_earns_error_100(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with running_connector(tmp_path, sim) as (con, _), gateway(
            aiohttp_client, tmp_path, sim, trading__enabled=True,
            trading__max_notional=1e9, trading__max_quantity=1000) as gw:
        connections = sim.state()["stats"]["connections_total"]

        async def order(i: int) -> tuple[int, dict[str, Any]]:
            sym = ("AAPL", "MSFT", "SPY", "QQQ")[i % 4]
            body: dict[str, Any] = {"symbol": sym, "action": "BUY", "quantity": 1 + i % 3}
            if i % 2:  # a market order: the notional guard asks for a price first
                body["orderType"] = "MKT"
            else:  # a limit far below the market: it rests, to be cancelled
                body.update(orderType="LMT", limitPrice=1.0)
            hdrs = {**H, "Idempotency-Key": f"burst-{i}"} if i % 3 == 0 else H
            r = await gw.post("/v1/orders", json=body, headers=hdrs)
            return r.status, await r.json()

        answers = await asyncio.gather(*(order(i) for i in range(100)))
        assert [s for s, _ in answers if s != 201] == [], answers
        resting = [a["orderId"] for _, a in answers if a["orderType"] == "LMT"]
        assert len(resting) == 50
        cancels = await asyncio.gather(*(gw.delete(f"/v1/orders/{oid}", headers=H)
                                         for oid in resting))
        assert [c.status for c in cancels] == [200] * 50
        st = sim.state()
        assert "100" not in st["stats"]["errors_sent"], st["stats"]["errors_sent"]
        assert st["stats"]["connections_total"] == connections  # never dropped
        assert con.session.usable
