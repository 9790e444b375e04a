"""IB's numbers: only IB's real "unset" markers become null; every other value survives."""

from __future__ import annotations

import datetime as dt
import math
import sys
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from ib_async.util import UNSET_DOUBLE

from ibhost.connector import account, bars, orders, service, values
from ibhost.connector.account import AccountRequests
from ibhost.connector.orders import OrderRequests
from ibhost.connector.values import _greek, _num, _quote


def test_one_helper_for_every_request_module() -> None:
    assert account._num is values._num and service._num is values._num
    assert orders._num is values._num
    assert bars._num is values._num
    assert values.UNSET_DOUBLE == UNSET_DOUBLE == sys.float_info.max


@pytest.mark.parametrize("given", [-1.0, -1, "-1", "-1.00", Decimal("-1"), 0.0, -2.0, 3.5,
                                   -1e12])
def test_every_value_is_a_value(given: Any) -> None:
    assert _num(given) == float(given)


@pytest.mark.parametrize("given", [math.nan, UNSET_DOUBLE, -UNSET_DOUBLE, math.inf,
                                   str(UNSET_DOUBLE), "1.7976931348623157E308", None, "",
                                   "x"])
def test_unset_markers_are_none(given: Any) -> None:
    assert _num(given) is None


def test_the_librarys_empty_quote_and_ibs_uncomputed_greeks() -> None:
    assert _quote(-1.0) is None and _quote(-1.5) == -1.5 and _quote(math.nan) is None
    assert _greek("delta", -2.0) is None and _greek("delta", -1.0) == -1.0
    assert _greek("impliedVol", -1.0) is None and _greek("theta", -0.5) == -0.5


def _fill(realized: float, commission: float) -> Any:
    t = dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)
    e = SimpleNamespace(execId="e1", time=t, side="SLD", shares=1.0, price=10.0,
                        avgPrice=10.0, cumQty=1.0, orderId=1, permId=2, clientId=1,
                        orderRef="r", exchange="SMART")
    c = SimpleNamespace(symbol="AAPL", conId=265598, secType="STK", localSymbol="AAPL",
                        currency="USD", right="", strike=0.0,
                        lastTradeDateOrContractMonth="", multiplier="")
    cr = SimpleNamespace(execId="e1", commission=commission, realizedPNL=realized)
    return SimpleNamespace(execution=e, contract=c, commissionReport=cr)


async def test_a_realized_loss_of_one_dollar_survives_the_executions_answer() -> None:
    ib = SimpleNamespace(fills=lambda: [_fill(-1.0, 1.0)])
    svc = SimpleNamespace(session=SimpleNamespace(require_ready=lambda: None), ib=ib)
    [ex] = await OrderRequests.executions(svc)  # type: ignore[arg-type]
    assert ex.realizedPNL == -1.0 and ex.commission == 1.0


def test_a_realized_loss_of_one_dollar_survives_the_portfolio_answer() -> None:
    c = SimpleNamespace(conId=1, symbol="AAPL", secType="STK", currency="USD",
                        localSymbol="AAPL", right="", strike=0.0,
                        lastTradeDateOrContractMonth="", multiplier="")
    p = SimpleNamespace(account="DU1", contract=c, position=1.0, marketPrice=-1.0,
                        marketValue=-1.0, averageCost=0.0, unrealizedPNL=math.nan,
                        realizedPNL=-1.0)
    svc = SimpleNamespace(session=SimpleNamespace(require_ready=lambda: None),
                          ib=SimpleNamespace(portfolio=lambda: [p]))
    req = AccountRequests.__new__(AccountRequests)
    req.calls = svc  # type: ignore[assignment]
    [row] = req.portfolio()
    assert row.realizedPNL == -1.0 and row.marketPrice == -1.0
    assert row.unrealizedPNL is None


def test_bars_without_trades_keep_their_volume_and_wap_markers() -> None:
    t = dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)
    bar = SimpleNamespace(date=t, open=1.0, high=1.0, low=1.0, close=1.0, volume=-1.0,
                          average=-1.0, barCount=-1)
    cols = bars.from_ib([bar])
    assert cols["volume"] == [0.0] and cols["wap"] == [None]


def test_one_reading_of_boolean_words_everywhere() -> None:
    """validate.bool_word is how the gateway's queries and bodies, the configuration,
    the streams' flags and the simulator's controls read a boolean, and OpenAPI's
    pattern says the same."""
    import re

    from ibhost import config
    from ibhost.validate import bool_pattern, bool_word

    for word, want in (("true", True), (" YES ", True), ("On", True), ("1", True),
                       ("false", False), ("No", False), ("OFF", False), ("0", False),
                       (1, True), (0, False), (True, True)):
        assert bool_word(word) is want, word
        if isinstance(word, str):
            assert re.match(bool_pattern(), word)
    for bad in ("tru", "2", "", "yess", 2, None, 1.0):
        assert bool_word(bad) is None, bad
        if isinstance(bad, str) and bad:
            assert not re.match(bool_pattern(), bad)
    cfg = config.load(home="/nonexistent-home", env={"IBHOST_TRADING_ENABLED": "Yes"},
                      overrides={})
    assert cfg.trading.enabled is True


def test_the_order_journal_keeps_its_events_at_their_size(tmp_path) -> None:
    """The journal keeps up to journal_keep events for the connector's lifetime: each
    costs about its own length, not the encoder's buffer (which was ~4 KiB)."""
    import tracemalloc

    from ibhost.connector.journal import OrderJournal

    j = OrderJournal(tmp_path / "orders.journal", keep=10_000)
    tracemalloc.start()
    for i in range(2000):
        j.append({"type": "order", "event": "status", "orderId": i, "permId": 10_000 + i,
                  "clientId": 1, "symbol": "AAPL", "status": "Submitted", "filled": 0.0,
                  "time": "2025-12-10T15:30:00+00:00"})
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    j.close()
    assert used / 2000 < 1000, f"{used / 2000:.0f} bytes kept per event"


def test_bars_from_the_library_keep_every_value_and_drop_only_ibs_markers() -> None:
    """from_ib's fast path (plain floats, aware datetimes) reads each value as _bar_value
    does: -1, NaN, IB's unset double and infinities are no value; 0 and -2 are values."""
    from ib_async import BarData

    from ibhost.connector.bars import _bar_value, from_ib

    t0 = dt.datetime(2025, 11, 20, 14, 30, tzinfo=dt.UTC)
    odd = [-1.0, 0.0, math.nan, UNSET_DOUBLE, -UNSET_DOUBLE, math.inf, 5.5, -2.0]
    bars = [BarData(date=t0 + dt.timedelta(minutes=i), open=1.0, high=1.0, low=1.0,
                    close=1.0, volume=v, average=v, barCount=1) for i, v in enumerate(odd)]
    cols = from_ib(bars)
    assert cols["wap"] == [_bar_value(v) for v in odd] == \
        [None, 0.0, None, None, None, None, 5.5, -2.0]
    assert cols["volume"] == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.5, -2.0]
    assert cols["t"] == [int(t0.timestamp()) + 60 * i for i in range(len(odd))]
    # daily bars come as dates, and a Decimal volume takes the general path
    day = from_ib([BarData(date=dt.date(2025, 11, 20), open=1.0, high=1.0, low=1.0,
                           close=1.0, volume=Decimal("7"), average=-1.0, barCount=1)])
    assert day["t"] == [int(dt.datetime(2025, 11, 20, tzinfo=dt.UTC).timestamp())]
    assert day["volume"] == [7.0] and day["wap"] == [None]
