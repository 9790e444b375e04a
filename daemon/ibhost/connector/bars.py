"""Bars as columns: one list per field, not an object per bar.

A chunk's values stay plain floats and ints, nothing is built per bar until an
answer is written, and a large job leaves far fewer small objects behind to
fragment the heap.

The connector's own historical requests are read straight from IB's message into
columns (``read_columns``): the library's decoder builds a ``BarData`` per bar and
parses each date into a datetime that the columns turn back into epoch seconds
(2.8 ms for 390 bars on the reference machine, against 0.5 ms read here in one
pass, or 1.1 ms field by field where a field is not a JSON number). The
reader is put in front of the library's only after it has read a sample answer
exactly as the library does (``install``); any other request, and every request
when the check fails, goes to the library as before.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Callable
from typing import Any

import orjson

from .shapes import VALUES, Columns, stamps
from .values import UNSET_DOUBLE, _num, _utc

log = logging.getLogger("ibhost.connector.bars")

HISTORICAL_DATA = 17  # IB's incoming message id (the library's decoder.handlers key)
FIELDS_PER_BAR = 8  # date, open, high, low, close, volume, WAP, count


class ColumnRequest(list[Any]):
    """The container of a historical request whose answer is to come as columns: the
    library's own reader appends ``BarData`` to it (a list) where the column reader
    is not installed, so the request works either way."""


def from_ib(raw: Any) -> Columns:
    """The library's BarData list as columns."""
    if isinstance(raw, dict):  # read as columns already (read_columns)
        return raw
    dates = [b.date for b in raw]
    if all(type(d) is dt.datetime and d.tzinfo is not None for d in dates):
        t = [int(d.timestamp()) for d in dates]  # intraday bars (formatDate 2): aware
    else:
        t = [int(_utc(d).timestamp()) for d in dates]
    return {"t": t, "open": [b.open for b in raw], "high": [b.high for b in raw],
            "low": [b.low for b in raw], "close": [b.close for b in raw],
            "volume": [v or 0.0 for v in _bar_values([b.volume for b in raw])],
            "wap": _bar_values([b.average for b in raw]), "count": [b.barCount for b in raw]}


def read_columns(fields: list[str], parse_date: Callable[[str], Any]) -> Columns:
    """IB's historicalData message (``17, reqId, start, end, n, n x 8 fields``) as
    ``from_ib`` would give it after the library had read it; ``parse_date`` is the
    library's reader of a date it does not find in epoch seconds."""
    n = int(fields[4])
    v = fields[5:5 + FIELDS_PER_BAR * n]
    if len(v) != FIELDS_PER_BAR * n:
        raise ValueError(f"historicalData: {n} bars announced, {len(v)} fields")
    numbers = _intraday_numbers(v)
    if numbers is not None:
        t, count, values = numbers
    else:  # field by field
        dates = v[0::8]
        if all(len(d) > 8 and d.isdigit() for d in dates):  # formatDate 2, intraday
            t = list(map(int, dates))
        else:  # daily bars: YYYYMMDD, midnight UTC as from_ib takes it
            t = [int(_utc(parse_date(d)).timestamp()) for d in dates]
        count, values = list(map(int, v[7::8])), v
    # float() of the text, or of the number read from it: the same double
    return {"t": t, "open": list(map(float, values[1::8])),
            "high": list(map(float, values[2::8])), "low": list(map(float, values[3::8])),
            "close": list(map(float, values[4::8])),
            "volume": [x or 0.0 for x in _bar_values(list(map(float, values[5::8])))],
            "wap": _bar_values(list(map(float, values[6::8]))), "count": count}


def _intraday_numbers(v: list[str]) -> tuple[list[int], list[int], list[Any]] | None:
    """Intraday bars whose every field is a JSON number, read in one pass (orjson's,
    in C) instead of one ``int()`` or ``float()`` per field: the bars' epoch seconds,
    their counts, and every field as a number (0.5 ms for 390 bars read to columns,
    against 1.1 ms field by field). A decimal text is read to the nearest double
    either way. None (and the caller reads field by field) for anything else: daily
    dates, a count that is not an int, text that is not a JSON number (``nan``,
    ``1.``, a leading ``+`` or zero)."""
    try:
        nums = orjson.loads(b"[" + ",".join(v).encode() + b"]")
    except (orjson.JSONDecodeError, UnicodeEncodeError):
        return None
    t, count = nums[0::8], nums[7::8]
    # epoch seconds (formatDate 2, intraday): the slow path's ``len(d) > 8 and
    # d.isdigit()``; JSON has no leading zeros or ``+``, so a non-negative int of
    # nine digits or more is exactly such a text
    if not all(type(x) is int and x >= 100_000_000 for x in t):
        return None
    if not all(type(x) is int for x in count):
        return None
    return t, count, nums


# A sample answer the reader must read exactly as the library does before it is used:
# intraday epoch dates, a daily date, a bar without trades (-1 volume and WAP) and
# a volume with a fraction.
_SAMPLE_INTRADAY = ["17", "0", "20251120 09:30:00 US/Eastern", "20251120 09:32:00 US/Eastern",
                    "2", "1763649000", "271.5", "271.9", "271.1", "271.33", "12345",
                    "271.42", "87", "1763649060", "271.33", "271.35", "271.2", "271.25",
                    "-1", "-1", "0"]
_SAMPLE_DAILY = ["17", "0", "20251117", "20251120", "1", "20251119", "1.1", "1.2", "1.0",
                 "1.15", "100.5", "1.12", "7"]


def install(ib: Any, parse_date: Callable[[str], Any]) -> bool:
    """Read the answers of ``ColumnRequest``s as columns; every other historicalData
    message goes to the library's reader. ``parse_date``: the library's
    ``util.parseIBDatetime``. False (and the library reads everything, as before) if
    this library reads the sample answers differently or keeps its reader elsewhere."""
    wrapper = ib.wrapper
    handlers = getattr(getattr(ib.client, "decoder", None), "handlers", None)
    if not isinstance(handlers, dict):
        handlers = {}
    original = handlers.get(HISTORICAL_DATA)
    if original is None or not _reads_as_library(wrapper, original, parse_date):
        log.warning("bars are read by the library's decoder (the column reader's check "
                    "did not pass on this library version)")
        return False

    def historical_data(fields: list[str]) -> None:
        req_id = int(fields[1])
        if type(wrapper._results.get(req_id)) is not ColumnRequest:
            original(fields)
            return
        # the container _endReq leaves behind is dropped by its request (_request_bars)
        wrapper._endReq(req_id, read_columns(fields, parse_date))

    handlers[HISTORICAL_DATA] = historical_data
    return True


class _Answer:
    """Stands in for a request's future in the check (no event loop needed)."""

    def __init__(self) -> None:
        self.value: Any = None
        self.ended = False

    def done(self) -> bool:
        return self.ended

    def set_result(self, value: Any) -> None:
        self.value, self.ended = value, True

    def set_exception(self, e: BaseException) -> None:
        raise e


def _reads_as_library(wrapper: Any, original: Callable[[list[str]], None],
                      parse_date: Callable[[str], Any]) -> bool:
    req_id = -7_000_001  # never one of the library's
    try:
        for sample in (_SAMPLE_INTRADAY, _SAMPLE_DAILY):
            fields = [sample[0], str(req_id), *sample[2:]]
            answer = _Answer()
            wrapper._futures[req_id] = answer
            wrapper._results[req_id] = []
            original(fields)
            if not answer.ended or from_ib(answer.value) != read_columns(fields,
                                                                         parse_date):
                return False
    except Exception:  # a library whose reader or bookkeeping works otherwise
        log.exception("column reader check")
        return False
    finally:
        wrapper._futures.pop(req_id, None)
        wrapper._results.pop(req_id, None)
    return True


def _bar_values(xs: list[Any]) -> list[float | None]:
    """Bars' volumes or WAPs: ``_bar_value`` of each, without a call per bar where
    they are plain floats (as the library's are): 390 bars in 25 us, not 200."""
    if all(type(x) is float for x in xs):
        return [x if x == x and x != -1.0 and -UNSET_DOUBLE < x < UNSET_DOUBLE else None
                for x in xs]  # x == x: not NaN
    return [_bar_value(x) for x in xs]


def _bar_value(x: Any) -> float | None:
    """A bar's volume or WAP: IB sends -1 for both where the bar has no trades
    (MIDPOINT, BID, ASK bars), which the library hands on as it came."""
    f = _num(x)
    return None if f == -1.0 else f


def select(cols: Columns, lo: float, hi: float) -> Columns:
    """The bars with ``lo <= t < hi``, in time order."""
    ts = cols["t"]
    idx = [i for i, t in enumerate(ts) if lo <= t < hi]
    if any(ts[a] > ts[b] for a, b in itertools.pairwise(idx)):
        idx.sort(key=ts.__getitem__)  # IB answers in time order; this is in case not
    elif len(idx) == len(ts):
        return cols
    return {k: [v[i] for i in idx] for k, v in cols.items()}


def records(cols: Columns) -> list[dict[str, Any]]:
    """Columns as one dict per bar, as the answers show them."""
    return [{"timestamp": t, "open": o, "high": h, "low": lo, "close": c,
             "volume": v, "wap": w, "count": n}
            for t, o, h, lo, c, v, w, n in zip(stamps(cols["t"]),
                                               *(cols[k] for k in VALUES), strict=True)]
