"""Every typed answer of connector.sock is its model (ibhost.models), with real data from
the simulator: the connector encodes the models and ConnectorClient decodes them
strictly, so a field of the wrong type or one no model declares fails here."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import msgspec
import pytest

from ibhost import models
from ibhost.connector.client import ConnectorClient
from ibhost.sim import Simulator

from .connector_fixtures import running_connector, wait_until


async def test_every_typed_answer_decodes_into_its_model(sim: Simulator,
                                                          tmp_path: Path) -> None:
    async with running_connector(tmp_path, sim) as (con, _):
        c = ConnectorClient(con.socket_path, read_timeout=60)
        try:
            placed = await c.place_order({"symbol": "AAPL", "action": "BUY", "quantity": 2,
                                          "orderType": "MKT", "orderRef": "models-1"})
            assert isinstance(placed, models.PlacedOrder) and placed.duplicate is False
            again = await c.place_order({"symbol": "AAPL", "action": "BUY", "quantity": 2,
                                         "orderType": "MKT", "orderRef": "models-1"})
            assert again.duplicate is True and again.orderId == placed.orderId
            resting = await c.place_order({"symbol": "AAPL", "action": "BUY", "quantity": 1,
                                           "orderType": "LMT", "limitPrice": 1.0,
                                           "orderRef": "models-2"})
            await wait_until(lambda: bool(con.service.ib.fills()), 10)
            fills = await c.executions({"symbol": "AAPL"})
            assert fills and all(isinstance(f, models.Execution) for f in fills)
            assert fills[0].shares > 0 and fills[0].currency == "USD"
            positions = await c.positions()
            assert any(p.symbol == "AAPL" and p.position >= 2 for p in positions)
            assert all(isinstance(p, models.PortfolioItem) for p in await c.portfolio())
            summary = await c.account_summary()
            net = [v for v in summary if v.tag == "NetLiquidation"]
            assert net and isinstance(net[0].value, float)
            open_ids = [o.orderId for o in await c.open_orders()]
            assert resting.orderId in open_ids
            found = await c.order_by_ref({"orderRef": "models-2"})
            assert found.orderId == resting.orderId and found.limitPrice == 1.0
            cancelled = await c.cancel_order(resting.orderId)
            assert isinstance(cancelled, models.Order) and cancelled.orderId == resting.orderId
            pnl = await c.pnl()
            assert isinstance(pnl, models.Pnl) and pnl.conId is None
            # an account's P&L leaves out the fields only a position's has
            assert set(json.loads(await c.relay("pnl"))) == {
                "account", "modelCode", "dailyPnL", "unrealizedPnL", "realizedPnL"}
            details = await c.validate({"symbol": "AAPL"})
            assert details.secType == "STK" and details.minTick > 0
            head = await c.head_timestamp({"symbol": "AAPL"})
            assert head.headTimestamp[:4].isdigit()
            chain = await c.option_chain({"symbol": "AAPL"})
            assert chain.underlying.symbol == "AAPL" and chain.chains[0].strikes
            quote = await c.snapshot({"symbol": "AAPL"})
            assert quote.symbol == "AAPL" and quote.delayed is False
            held = await c.subscribe({"symbol": "MSFT"})
            assert held.symbol == "MSFT" and held.key
            assert [h.key for h in await c.subscriptions()] == [held.key]
            await c.unsubscribe(held.conId or 0)
        finally:
            await c.close()


@pytest.mark.parametrize("model", models.ANSWERS, ids=lambda m: m.__name__)
def test_the_published_schema_is_the_model(model: type[models.Model]) -> None:
    """The OpenAPI document's component is generated from the model: a value the model
    accepts is valid against it, and one with an undeclared field is not."""
    from ibhost.gateway.openapi import SPEC

    components = SPEC["components"]["schemas"]
    schema = {**components[model.__name__], "components": {"schemas": components}}
    fields = msgspec.structs.fields(model)
    required = {f.encode_name for f in fields if f.required}
    assert set(components[model.__name__].get("required", ())) == required
    assert components[model.__name__]["additionalProperties"] is False
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"undeclared": 1}, schema)
