"""The parts of ib_async that are not its public API and that the connector relies on.

pyproject.toml pins ib_async to the range these pass on. A release that renames,
removes or re-signs one of them fails here, naming it, rather than in a connector
that stops noticing lost requests or reading head timestamps.
"""

from __future__ import annotations

import inspect
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ib_async
import pytest
from eventkit import Event
from ib_async.client import Client
from ib_async.connection import Connection
from ib_async.wrapper import RequestError, Wrapper
from packaging.requirements import Requirement

from ibhost.connector.backend import load

ROOT = Path(__file__).resolve().parent.parent


def _params(fn: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(fn).parameters)


# internal -> (the callable, the parameters the connector passes), with where it is used
SIGNATURES: dict[str, tuple[Callable[..., Any], list[str]]] = {
    # session.py ends a request IB answered with 321 (the library only logs it);
    # backend.py ends a head-timestamp request it parsed itself
    "Wrapper._endReq": (Wrapper._endReq, ["self", "key", "result", "success"]),
    # historical.py: a bars request that is cancelled at IB when its caller goes away
    "Wrapper.startReq": (Wrapper.startReq, ["self", "key", "contract", "container"]),
    "Client.getReqId": (Client.getReqId, ["self"]),
    "Client.reqHistoricalData": (Client.reqHistoricalData, [
        "self", "reqId", "contract", "endDateTime", "durationStr", "barSizeSetting",
        "whatToShow", "useRTH", "formatDate", "keepUpToDate", "chartOptions"]),
    "Client.cancelHistoricalData": (Client.cancelHistoricalData, ["self", "reqId"]),
    # heartbeat.py: the heartbeat; session.py: the server version for /health
    "Client.reqCurrentTime": (Client.reqCurrentTime, ["self"]),
    "Client.serverVersion": (Client.serverVersion, ["self"]),
    # wrapped on the instance (backend.py, session.py)
    "Wrapper.headTimestamp": (Wrapper.headTimestamp, ["self", "reqId", "headTimestamp"]),
    "Wrapper.currentTime": (Wrapper.currentTime, ["self", "time"]),
    # service.py counts every message sent against IB's 50 per second
    "Client.sendMsg": (Client.sendMsg, ["self", "msg"]),
    "Connection.sendMsg": (Connection.sendMsg, ["self", "msg"]),
    # session.py builds one for a 321
    "RequestError.__init__": (RequestError.__init__, ["self", "reqId", "code", "message"]),
}


@pytest.mark.parametrize("name", SIGNATURES)
def test_signature(name: str) -> None:
    fn, expected = SIGNATURES[name]
    got = _params(fn)
    assert got[:len(expected)] == expected, (
        f"ib_async {ib_async.__version__}: {name}{inspect.signature(fn)} is not "
        f"({', '.join(expected)}), which the connector calls")
    rest = list(inspect.signature(fn).parameters.values())[len(expected):]
    assert all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in rest), f"{name} has new required parameters: {rest}"


@pytest.mark.parametrize("name", ["IB", "Contract", "Order", "ExecutionFilter",
                                  "RequestError", "BarDataList"])
def test_the_names_the_connector_takes_from_the_library(name: str) -> None:
    """backend.py's seam: the connector reaches these as ``Backend.lib.<name>``."""
    assert hasattr(load("ib_async").lib, name), f"ib_async.{name} is gone"


def test_the_installed_version_is_in_the_pinned_range() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    req = next(Requirement(d) for d in deps if Requirement(d).name == "ib_async")
    assert req.specifier, "ib_async is not pinned in pyproject.toml"
    assert req.specifier.contains(ib_async.__version__), (
        f"ib_async {ib_async.__version__} is outside {req.specifier}: run this file "
        "against it before widening the pin")


async def test_attributes_of_a_new_ib() -> None:
    ib = load("ib_async").new_ib()
    checks: dict[str, tuple[Any, type | tuple[type, ...]]] = {
        "IB.RaiseRequestErrors": (type(ib).__dict__.get("RaiseRequestErrors"), bool),
        "IB.connectAsync(raiseSyncErrors=)": (
            inspect.signature(ib.connectAsync).parameters.get("raiseSyncErrors"),
            inspect.Parameter),
        "Wrapper._futures": (getattr(ib.wrapper, "_futures", None), dict),
        "Wrapper.acctSummary": (getattr(ib.wrapper, "acctSummary", None), dict),
        "Client.MaxRequests": (getattr(ib.client, "MaxRequests", None), int),
        "Client.conn": (getattr(ib.client, "conn", None), Connection),
        "Client.apiStart": (getattr(ib.client, "apiStart", None), Event),
        "Connection.hasData": (getattr(ib.client.conn, "hasData", None), Event),
    }
    for name, (value, kind) in checks.items():
        assert isinstance(value, kind), f"ib_async {ib_async.__version__}: {name} is {value!r}"
    fields = ib_async.BarDataList.__annotations__
    for name in ("reqId", "contract", "endDateTime", "durationStr", "barSizeSetting",
                 "whatToShow", "useRTH", "formatDate", "keepUpToDate", "chartOptions"):
        assert name in fields, f"BarDataList.{name} is gone"


async def test_end_req_fails_the_future_start_req_made() -> None:
    w = load("ib_async").new_ib().wrapper
    bars = ib_async.BarDataList()
    fut = w.startReq(7, None, container=bars)
    assert 7 in w._futures, "Wrapper.startReq no longer registers in Wrapper._futures"
    err = RequestError(7, 321, "bad")
    w._endReq(7, err, success=False)
    assert fut.exception() is err, "Wrapper._endReq(key, err, success=False) did not fail it"
    assert 7 not in w._futures
    fut = w.startReq(8, None, container=bars)
    w._endReq(8)
    assert fut.result() is bars, "Wrapper._endReq(key) did not answer the container"


async def test_the_decoder_finds_wrapped_handlers_on_the_instance() -> None:
    """The connector wraps wrapper.currentTime and wrapper.headTimestamp on the
    instance; the decoder must look them up per message, not bind them once."""
    ib = load("ib_async").new_ib()  # wraps headTimestamp (dates before 1970)
    seen: list[int] = []
    ib.wrapper.currentTime = seen.append
    ib.client.decoder.interpret(["49", "1", "1700000000"])
    assert seen == [1700000000], "Decoder binds Wrapper.currentTime once: a wrapper is lost"
    fut = ib.wrapper.startReq(5)
    ib.client.decoder.interpret(["88", "5", "-245116800"])
    assert fut.done() and fut.result().year == 1962, (
        "Decoder binds Wrapper.headTimestamp once: dates before 1970 fail again")


async def test_every_message_passes_the_connections_send_msg() -> None:
    ib = load("ib_async").new_ib()
    sent: list[bytes] = []
    ib.client.conn.sendMsg = sent.append
    ib.client.sendMsg("49\x001\x00")
    assert len(sent) == 1 and sent[0].endswith(b"49\x001\x00"), (
        "Client.sendMsg no longer sends through Client.conn.sendMsg: messages go uncounted")


def test_the_unset_markers_values_reads() -> None:
    """connector/values.py does not import the library (it is a leaf): its copies of
    the library's markers are pinned here."""
    from ib_async.objects import IBDefaults
    from ib_async.util import UNSET_DOUBLE

    from ibhost.connector import values

    assert values.UNSET_DOUBLE == UNSET_DOUBLE, "ib_async.util.UNSET_DOUBLE changed"
    assert values.EMPTY_PRICE == IBDefaults().emptyPrice, "IBDefaults.emptyPrice changed"


def _bars_message(req_id: int, dates: list[str], seed: int) -> list[str]:
    import random

    rnd = random.Random(seed)
    fields = ["17", str(req_id), "20251117 09:30:00 US/Eastern", "20251120 16:00:00 US/Eastern",
              str(len(dates))]
    for d in dates:
        o = round(rnd.uniform(1, 500), 2)
        no_trades = rnd.random() < 0.2  # MIDPOINT-like bar: IB sends -1 volume and WAP
        fields += [d, str(o), str(o + 1.5), str(o - 1.25), str(o + 0.5),
                   "-1" if no_trades else rnd.choice(["0", "12345", "100.5", "7e3"]),
                   "-1" if no_trades else str(o + 0.1), str(rnd.randint(0, 900))]
    return fields


async def test_the_connectors_bars_are_read_as_columns_the_way_the_library_reads_them(
        ) -> None:
    """connector/bars.py reads the answers of its own historical requests itself (the
    library builds a BarData per bar and parses each date): the same message, read
    by both, must give the same columns, for intraday (epoch) and daily dates."""
    from ibhost.connector import bars

    ib = load("ib_async").new_ib()
    ours = ib.client.decoder.handlers[bars.HISTORICAL_DATA]
    library = ib_async.decoder.Decoder(ib.wrapper, 0).handlers[bars.HISTORICAL_DATA]
    assert ours.__name__ == "historical_data", "the column reader is not installed"
    intraday = [str(1763649000 + 60 * i) for i in range(390)]
    daily = [f"202511{d:02d}" for d in range(3, 28) if d % 7 not in (1, 2)]
    for seed, dates in enumerate([intraday, daily, intraday[:1], []]):
        got = []
        for handler, container in ((library, ib_async.BarDataList()),
                                   (ours, bars.ColumnRequest())):
            fut = ib.wrapper.startReq(40 + seed, None, container=container)
            handler(_bars_message(40 + seed, dates, seed))
            got.append(bars.from_ib(fut.result()))
            assert 40 + seed not in ib.wrapper._futures
            ib.wrapper._results.pop(40 + seed, None)
        assert got[0] == got[1]
        assert len(got[1]["t"]) == len(dates)
        assert isinstance(fut.result(), dict), "the column reader did not read it"
    # a request of the library's own (its BarDataList) is still the library's
    fut = ib.wrapper.startReq(99, None, container=ib_async.BarDataList())
    ours(_bars_message(99, intraday[:3], 9))
    assert [type(b) for b in fut.result()] == [ib_async.BarData] * 3


async def test_a_library_that_reads_bars_otherwise_keeps_its_own_reader() -> None:
    """The column reader is put in front only after it has read a sample answer as
    the library does: a library whose reader differs keeps it, and bars still come."""
    from ibhost.connector import bars

    ib = load("ib_async").new_ib()
    handlers = ib.client.decoder.handlers
    library = ib_async.decoder.Decoder(ib.wrapper, 0).handlers[bars.HISTORICAL_DATA]

    def reads_opens_as_closes(fields: list[str]) -> None:
        f = list(fields)
        for i in range(5, len(f) - 7, 8):
            f[i + 1] = f[i + 4]
        library(f)

    handlers[bars.HISTORICAL_DATA] = reads_opens_as_closes
    assert not bars.install(ib, ib_async.util.parseIBDatetime)
    assert handlers[bars.HISTORICAL_DATA] is reads_opens_as_closes
    assert not ib.wrapper._futures and not ib.wrapper._results, "the check left a request"
    fut = ib.wrapper.startReq(5, None, container=bars.ColumnRequest())
    handlers[bars.HISTORICAL_DATA](_bars_message(5, ["1763649000"], 1))
    assert bars.from_ib(fut.result())["t"] == [1763649000]


@pytest.mark.parametrize("odd", [
    {1: "1.", 6: ".5"},  # a price and a WAP Python reads and JSON does not
    {2: "00.5", 7: "+5"},  # leading zero; a count with a sign
    {5: "nan", 3: "1E+2"},  # a volume that is not a number; an exponent
    {6: "1.7976931348623157E308", 5: "12345678901234567890123"},  # IB's unset; huge
    {7: "7.0"},  # a count with a fraction: the library refuses it, so must ours
])
async def test_bars_read_in_one_pass_are_read_as_the_library_reads_them(
        odd: dict[int, str]) -> None:
    """Intraday bars are read in one pass when every field is a JSON number; any
    other text in one bar sends the whole message through the field-by-field reader,
    and both give what the library gives (or fail where it fails)."""
    from ibhost.connector import bars

    ib = load("ib_async").new_ib()
    ours = ib.client.decoder.handlers[bars.HISTORICAL_DATA]
    library = ib_async.decoder.Decoder(ib.wrapper, 0).handlers[bars.HISTORICAL_DATA]
    dates = [str(1763649000 + 60 * i) for i in range(20)]
    plain = _bars_message(7, dates, 3)
    assert bars._intraday_numbers(plain[5:]) is not None, "plain bars are not read in one pass"
    message = list(plain)
    for pos, text in odd.items():  # the fifth bar's field ``pos`` (0: date ... 7: count)
        message[5 + 8 * 4 + pos] = text
    outcome = []
    for handler, container in ((library, ib_async.BarDataList()),
                               (ours, bars.ColumnRequest())):
        fut = ib.wrapper.startReq(7, None, container=container)
        try:
            handler(message)
            outcome.append(bars.from_ib(fut.result()))
        except ValueError:
            outcome.append("ValueError")
        ib.wrapper._futures.pop(7, None)
        ib.wrapper._results.pop(7, None)
    assert outcome[0] == outcome[1]
