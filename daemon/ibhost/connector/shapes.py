"""The layouts a whole historical answer is written in, each encoded once, where the
bars are, chunk by chunk as the chunks arrive (what is held meanwhile is compact
text, not a dict per bar), so the gateway relays the bytes without parsing them:

- ``columns``: ibhost's own (v1) columnar JSON ``{..., count, columns, data: {...}}``;
- ``ktrdr``: KTRDR's ``/data/historical`` body, ``{"success", "data", "error",
  "rows"}`` with the bars as ``DataFrame.to_json(orient="index",
  date_format="iso")`` text in ``data`` (kpiteira/ktrdr ``ib-host-service``);
- ``bridge``: the wheel-strat bridge's bar list, ``[{"date", "open", ..., "average"}]``
  as Python's ``json.dumps`` writes it; the gateway puts the caller's symbol around it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from .. import ibrules

Columns = dict[str, list[Any]]  # "t" (epoch seconds) and the values, oldest first
VALUES = ("open", "high", "low", "close", "volume", "wap", "count")
COLUMNS = ("timestamp", *VALUES)


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_days: dict[int, str] = {}
_HH_MM = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
_SS = [f"{s:02d}" for s in range(60)]


def stamps(ts: list[int], sep: str = "T", tail: str = "+00:00") -> list[str]:
    """Each ``datetime.fromtimestamp(t, UTC).isoformat(sep)`` (whole seconds) with
    ``+00:00`` written as ``tail``; a day's date is formatted once, the time of day
    from tables: this runs once per bar (0.2 us, not 0.8 us; 0.2 ms less per 390)."""
    out = []
    days = _days
    for t in ts:
        day, sec = divmod(t, 86400)
        date = days.get(day)
        if date is None:
            if len(days) > 50_000:
                days.clear()
            date = days[day] = dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
        m, s = divmod(sec, 60)
        out.append(f"{date}{sep}{_HH_MM[m]}{_SS[s]}{tail}")
    return out


def iso_utc(t: int) -> str:
    """``datetime.fromtimestamp(t, UTC).isoformat()`` for whole seconds."""
    return stamps([t])[0]


class Shape(Protocol):
    def add(self, cols: Columns) -> None:
        """One chunk's bars (never empty)."""

    def done(self, head: dict[str, Any], count: int) -> bytes:
        """The whole answer."""


class Columnar:
    def __init__(self) -> None:
        self.frags: dict[str, list[bytes]] = {c: [] for c in COLUMNS}

    def add(self, cols: Columns) -> None:
        self.frags["timestamp"].append(orjson.dumps(stamps(cols["t"]))[1:-1])
        for c in VALUES:
            self.frags[c].append(orjson.dumps(cols[c])[1:-1])

    def done(self, head: dict[str, Any], count: int) -> bytes:
        data = b",".join(b'"%s":[%s]' % (c.encode(), b",".join(self.frags[c]))
                         for c in COLUMNS)
        top = orjson.dumps({"success": True, **head, "count": count, "columns": COLUMNS})
        return top[:-1] + b',"data":{' + data + b"}}"


class Ktrdr:
    """Index ``2025-11-17T14:30:00.000Z`` (the UTC bar start, as pandas writes it),
    then open, high, low, close, volume; ``rows`` is the bar count."""

    def __init__(self) -> None:
        self.frags: list[bytes] = []

    def add(self, cols: Columns) -> None:
        index = stamps(cols["t"], tail=".000Z")
        self.frags.append(orjson.dumps({
            t: {"open": o, "high": h, "low": lo, "close": c, "volume": v}
            for t, o, h, lo, c, v in zip(index, cols["open"], cols["high"], cols["low"],
                                         cols["close"], cols["volume"], strict=True)})[1:-1])

    def done(self, head: dict[str, Any], count: int) -> bytes:
        # the bars' JSON as a JSON string: it holds no backslash and no control
        # character (keys are timestamps, values numbers or null), so escaping it is
        # quoting its quotes
        data = b"{" + b",".join(self.frags) + b"}"
        return (b'{"success":true,"data":"' + data.replace(b'"', b'\\"') +
                b'","error":null,"rows":%d}' % count)


class Bridge:
    """``date`` is the day (``2025-11-17``) for daily and longer bars, else the UTC
    time as ``str(datetime)`` writes it (``2025-11-17 14:30:00+00:00``)."""

    def __init__(self, bar_size: str) -> None:
        self.daily = (ibrules.bar_seconds(bar_size) or 0) >= 86400
        self.frags: list[str] = []

    def add(self, cols: Columns) -> None:
        dates = ([t[:10] for t in stamps(cols["t"])] if self.daily else
                 stamps(cols["t"], sep=" "))
        self.frags.append(json.dumps([
            {"date": d, "open": o, "high": h, "low": lo, "close": c, "volume": v,
             "average": w}
            for d, o, h, lo, c, v, w in zip(dates, cols["open"], cols["high"], cols["low"],
                                            cols["close"], cols["volume"], cols["wap"],
                                            strict=True)])[1:-1])

    def done(self, head: dict[str, Any], count: int) -> bytes:
        return ("[" + ", ".join(self.frags) + "]").encode()


SHAPES: dict[str, Callable[[str], Shape]] = {
    "columns": lambda bar_size: Columnar(),
    "ktrdr": lambda bar_size: Ktrdr(),
    "bridge": Bridge,
}
