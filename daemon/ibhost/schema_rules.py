"""JSON Schema for the rules that tie a request's fields together, derived from the
tables the server checks them with (``ibrules``): IB's step sizes between a duration
and a bar size, a timeframe and a barSize that must agree, and which order types need
which price. /openapi.json states them, so a body the schema allows is one the server
takes, and one it forbids is a 400 naming the field."""

from __future__ import annotations

import bisect
from typing import Any

from . import ibrules


def int_range(lo: int, hi: int) -> str:
    """A regex (no anchors) matching the decimal integers ``lo``..``hi`` written without
    leading zeros."""
    alts: list[str] = []
    for width in range(len(str(lo)), len(str(hi)) + 1):
        a, b = max(lo, 10 ** (width - 1) if width > 1 else 0), min(hi, 10 ** width - 1)
        if a <= b:
            alts += _same_width(str(a), str(b))
    return "|".join(alts)


def _same_width(lo: str, hi: str) -> list[str]:
    if not lo:
        return [""]
    if lo[0] == hi[0]:
        return [lo[0] + p for p in _same_width(lo[1:], hi[1:])]
    n = len(lo) - 1
    rest = "" if n == 0 else "[0-9]" if n == 1 else f"[0-9]{{{n}}}"
    first, last = int(lo[0]), int(hi[0])
    head: list[str] = []
    tail: list[str] = []
    if lo[1:] != "0" * n:
        head = [lo[0] + p for p in _same_width(lo[1:], "9" * n)]
        first += 1
    if hi[1:] != "9" * n:
        tail = [hi[0] + p for p in _same_width("0" * n, hi[1:])]
        last -= 1
    middle = [] if first > last else [
        (str(first) if first == last else f"[{first}-{last}]") + rest]
    return head + middle + tail


def duration_range(bar_secs: int, unit: str) -> tuple[int, int] | None:
    """The counts ``n`` for which ``"n unit"`` fits ``bar_secs`` bars (a contiguous run:
    the step table grows with the duration), or None."""
    most = ibrules.MAX_DURATION[unit]
    counts = range(1, most + 1)
    secs = ibrules.DURATION_UNITS[unit]
    # the first duration long enough for the bar, then the first one past it that fits
    # no longer (too many bars of a hard-paced size)
    a = 1 + bisect.bisect_left(counts, True,
                               key=lambda n: ibrules.step_limits(n * secs)[1] >= bar_secs)
    if a > most:
        return None
    b = a - 1 + bisect.bisect_left(range(a, most + 1), True,
                                   key=lambda n: not ibrules.duration_fits(bar_secs,
                                                                           n * secs))
    return (a, b) if a <= b else None


def any_duration_pattern() -> str:
    """Every duration within IB's limits per unit, as an anchored pattern."""
    return "^(?:" + "|".join(f"(?:{int_range(1, most)}) {unit}"
                             for unit, most in ibrules.MAX_DURATION.items()) + ")$"


def duration_pattern(bar_secs: int) -> str:
    """The durations IB takes with ``bar_secs`` bars, as an anchored pattern."""
    alts = []
    for unit in ibrules.MAX_DURATION:
        r = duration_range(bar_secs, unit)
        if r is not None:
            alts.append(f"(?:{int_range(*r)}) {unit}")
    return f"^(?:{'|'.join(alts)})$"


def bar_names() -> dict[int, list[str]]:
    """Bar seconds -> every barSize spelling of it (IB's and its aliases)."""
    out: dict[int, list[str]] = {}
    for name in (*ibrules.BAR_SIZES, *ibrules.BAR_ALIASES):
        secs = ibrules.bar_seconds(name)
        assert secs is not None
        out.setdefault(secs, []).append(name)
    return out


def timeframe_names() -> dict[int, list[str]]:
    """Bar seconds -> the timeframes naming it."""
    out: dict[int, list[str]] = {}
    for tf, name in ibrules.TIMEFRAMES.items():
        secs = ibrules.bar_seconds(name)
        assert secs is not None
        out.setdefault(secs, []).append(tf)
    return out


# The rules are written as anyOf over plain alternatives, not as if/then/not: a
# generator (schemathesis) expands every if/then into two branches, and forty of them
# in one schema are more than it can draw from.

def given(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """``name`` is present and matches ``schema``, which must not admit null (the
    gateway reads a null field as an absent one)."""
    return {"required": [name], "properties": {name: schema}}


def absent(name: str) -> dict[str, Any]:
    """``name`` is absent or null."""
    return {"properties": {name: {"type": "null"}}}


def one_of(name: str, values: list[Any]) -> dict[str, Any]:
    """``name`` is absent, null or one of ``values``."""
    return {"properties": {name: {"enum": [*values, None]}}}


STRING: dict[str, Any] = {"type": "string"}


def historical_rules(secs_types: list[str]) -> list[dict[str, Any]]:
    """/v1/data/historical: a bar size by barSize or timeframe (the same one when both
    are given), start or duration (one of them), a duration IB's step sizes allow for
    the bar size, and no TRADES for forex or CFDs (IB 162: they have none)."""
    tfs = timeframe_names()
    no_trades = ("CASH", "CFD")
    return [
        {"anyOf": [given("barSize", STRING), given("timeframe", STRING)]},
        {"anyOf": [{"allOf": [given("start", STRING), absent("duration")]},
                   {"allOf": [given("duration", STRING), absent("start")]}]},
        {"anyOf": [one_of("secType", [t for t in secs_types if t not in no_trades]),
                   one_of("whatToShow", [w for w in ibrules.WHAT_TO_SHOW
                                         if w != "TRADES"])]},
        {"anyOf": [{"allOf": [one_of("barSize", names), one_of("timeframe", tfs.get(secs, [])),
                              {"properties": {"duration": {"anyOf": [
                                  {"type": "null"},
                                  {"type": "string", "pattern": duration_pattern(secs)}]}}}]}
                   for secs, names in bar_names().items()]},
    ]


BRIDGE_DEFAULT_BAR = "1 day"  # bridge.historical's defaults when a field is left out
BRIDGE_DEFAULT_DURATION = "1 M"


def bridge_historical_rules() -> list[dict[str, Any]]:
    """The bridge's /historical: the duration (default 1 M) fits the bar size (default
    1 day) by IB's step sizes."""
    default = ibrules.parse_duration(BRIDGE_DEFAULT_DURATION)
    assert default is not None
    default_secs = ibrules.duration_seconds(*default)
    default_bar = ibrules.bar_seconds(BRIDGE_DEFAULT_BAR)
    branches = []
    for secs, names in bar_names().items():
        bar = one_of("barSize", names) if secs == default_bar else given(
            "barSize", {"enum": names})
        pattern = {"type": "string", "pattern": duration_pattern(secs)}
        if ibrules.duration_fits(secs, default_secs):  # "" or null: the default
            duration = {"properties": {"duration": {
                "anyOf": [{"type": "null"}, {"const": ""}, pattern]}}}
        else:
            duration = given("duration", pattern)
        branches.append({"allOf": [bar, duration]})
    return [{"anyOf": branches}]


def order_rules(types: list[str], default_type: str, needs_limit: tuple[str, ...],
                needs_stop: tuple[str, ...] = (),
                no_limit: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Which order types (of ``types``) need which price: ``needs_limit`` a limitPrice,
    ``needs_stop`` a stopPrice, ``no_limit`` none (orderType absent or null:
    ``default_type``)."""
    def other_than(these: tuple[str, ...]) -> dict[str, Any]:
        rest = [t for t in types if t not in these]
        return one_of("orderType", rest) if default_type not in these else given(
            "orderType", {"enum": rest})

    price = {"type": "number"}
    rules = [{"anyOf": [other_than(needs_limit), given("limitPrice", price)]}]
    if needs_stop:
        rules.append({"anyOf": [other_than(needs_stop), given("stopPrice", price)]})
    if no_limit:
        rules.append({"anyOf": [other_than(no_limit), absent("limitPrice")]})
    return rules
