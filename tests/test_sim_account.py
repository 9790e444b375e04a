"""Account summary and PnL subscriptions through unmodified ib_async."""

from __future__ import annotations

import math

from ib_async import MarketOrder, Stock

from ibhost.sim import Simulator

from .conftest import eventually


async def _buy(client, n: float = 10) -> None:
    [c] = await client.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    trade = client.placeOrder(c, MarketOrder("BUY", n))
    await eventually(lambda: trade.orderStatus.status == "Filled")


async def test_account_summary_tags_and_ledger(sim: Simulator, ib) -> None:
    client, _ = ib
    await _buy(client)
    values = await client.accountSummaryAsync()
    by = {(v.tag, v.currency): v.value for v in values}
    assert by[("AccountType", "")] == "INDIVIDUAL"
    net = float(by[("NetLiquidation", "USD")])
    assert net > 0 and float(by[("BuyingPower", "USD")]) == round(net * 4, 2)
    # $LEDGER:ALL: the ledger per currency and in the base currency
    for cur in ("BASE", "USD"):
        assert ("CashBalance", cur) in by and ("UnrealizedPnL", cur) in by
    assert all(v.account == sim.broker.account for v in values)
    # a fill pushes a fresh summary to the open subscription
    before = by[("CashBalance", "BASE")]
    await _buy(client, 5)
    await eventually(lambda: client.wrapper.acctSummary[
        (sim.broker.account, "CashBalance", "BASE")].value != before)


async def test_third_account_summary_is_322(ib) -> None:
    client, errors = ib
    for req_id in (9001, 9002, 9003):
        client.client.reqAccountSummary(req_id, "All", "NetLiquidation")
    req, _, text = await errors.wait_for(322)
    assert req == 9003 and "Maximum number of account summary" in text
    client.client.cancelAccountSummary(9001)
    client.client.reqAccountSummary(9004, "All", "NetLiquidation")
    await eventually(lambda: any(v.tag == "NetLiquidation"
                                 for v in client.wrapper.acctSummary.values()))
    assert errors.codes().count(322) == 1


async def test_pnl_and_pnl_single(sim: Simulator, ib) -> None:
    client, errors = ib
    await _buy(client)
    acct = sim.broker.account
    pnl = client.reqPnL(acct)
    await eventually(lambda: not math.isnan(pnl.unrealizedPnL or math.nan))
    assert pnl.realizedPnL == 0
    single = client.reqPnLSingle(acct, "", 265598)
    await eventually(lambda: single.position == 10)
    mark = sim.market.quote(sim.broker.positions[265598].listing, sim.now()).last
    assert abs(single.value - 10 * mark) < 10 * 0.02 + 1e-6
    client.cancelPnL(acct)
    client.cancelPnLSingle(acct, "", 265598)
    client.reqPnL("U0000000")
    _, code, _ = await errors.wait_for(321)
    assert code == 321
