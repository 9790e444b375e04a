"""IB's documented historical-data rules, shared by the simulator (which enforces
them) and the connector (which plans requests to stay inside them).

Source: IB TWS API "Historical Bar Data" (legal bar sizes, duration units) and
"Historical Data Limitations" (step sizes, pacing).
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

BAR_SIZES: dict[str, int] = {
    "1 secs": 1, "5 secs": 5, "10 secs": 10, "15 secs": 15, "30 secs": 30,
    "1 min": 60, "2 mins": 120, "3 mins": 180, "5 mins": 300, "10 mins": 600,
    "15 mins": 900, "20 mins": 1200, "30 mins": 1800,
    "1 hour": 3600, "2 hours": 7200, "3 hours": 10800, "4 hours": 14400, "8 hours": 28800,
    "1 day": 86400, "1 week": 604800, "1 month": 2592000,
}
# IB's own error text lists "1W" and "1M" as the legal spellings of the two largest.
BAR_ALIASES = {"1W": "1 week", "1M": "1 month"}

LEGAL_BAR_TEXT = (
    "1 secs, 5 secs, 10 secs, 15 secs, 30 secs, 1 min, 2 mins, 3 mins, 5 mins, 10 mins, "
    "15 mins, 20 mins, 30 mins, 1 hour, 2 hours, 3 hours, 4 hours, 8 hours, 1 day, 1W, 1M"
)

DURATION_UNITS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 31 * 86400, "Y": 366 * 86400}

# Step sizes: for a duration up to the first column, bar sizes from the second to the
# third column (seconds) are valid.
STEP_TABLE: tuple[tuple[int, int, int], ...] = (
    (60, 1, 60),
    (120, 1, 120),
    (1800, 1, 1800),
    (3600, 5, 3600),
    (14400, 10, 10800),
    (28800, 30, 28800),
    (86400, 60, 86400),
    (2 * 86400, 120, 86400),
    (7 * 86400, 180, 604800),
    (31 * 86400, 1800, 2592000),
    (366 * 86400, 86400, 2592000),
)

WHAT_TO_SHOW = ("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK")

_DURATION_RE = re.compile(r"^\s*(\d+)\s+([SDWMY])\s*$")


def bar_seconds(bar_size: str) -> int | None:
    return BAR_SIZES.get(BAR_ALIASES.get(bar_size.strip(), bar_size.strip()))


# The longest duration IB takes in each unit; beyond these IB refuses the request
# (and date arithmetic on "1000000 W" would overflow): seconds up to a day,
# days up to a year, then weeks, months and years.
MAX_DURATION = {"S": 86400, "D": 365, "W": 52, "M": 12, "Y": 50}
BAR_SMALL_MAX = 30  # IB's hard pacing rules are stated for bars of 30 seconds or less


def parse_duration(text: str) -> tuple[int, str] | None:
    """``(n, unit)`` for IB's duration text, or None when malformed or out of range."""
    m = _DURATION_RE.match(text[:32])
    if not m or len(m.group(1)) > 9:
        return None
    n, unit = int(m.group(1)), m.group(2)
    if not 0 < n <= MAX_DURATION[unit]:
        return None
    return n, unit


def hard_paced(bar_secs: int) -> bool:
    """Whether IB's hard historical pacing rules apply to this bar size ("Historical
    Data Limitations": identical/15 s, 6 per 2 s, 60 per 10 min are for bars of 30
    seconds or less; for 1-minute bars and larger they have been lifted)."""
    return bar_secs <= BAR_SMALL_MAX


def duration_seconds(n: int, unit: str) -> int:
    return n * DURATION_UNITS[unit]


def step_limits(duration_secs: int) -> tuple[int, int]:
    """(smallest, largest) bar size in seconds allowed for a duration."""
    for max_dur, lo, hi in STEP_TABLE:
        if duration_secs <= max_dur:
            return lo, hi
    return 86400, 2592000


def duration_fits(bar_secs: int, duration_secs: int) -> bool:
    """Whether IB's step sizes let one ask for ``duration_secs`` of ``bar_secs`` bars: the
    bar is not too large for the duration, and not too small unless the range may be
    asked in chunks (bars over 30 s; the hard-paced ones would spend IB's 60-per-10-
    minutes budget)."""
    lo, hi = step_limits(duration_secs)
    return bar_secs <= hi and (bar_secs >= lo or not hard_paced(bar_secs))


def longest_duration(bar_secs: int) -> tuple[int, str]:
    """The longest single-request duration IB allows for a bar size, as (n, unit)."""
    best: tuple[int, str] = (60, "S")
    for max_dur, lo, hi in STEP_TABLE:
        if lo <= bar_secs <= hi:
            if max_dur % 86400 == 0:
                best = (max_dur // 86400, "D")
            else:
                best = (max_dur, "S")
    if bar_secs >= 86400:
        best = (1, "Y")
    return best


def parse_end_datetime(text: str, default_tz: str = "US/Eastern") -> dt.datetime:
    """Parse reqHistoricalData's endDateTime.

    Accepted like TWS: ``yyyymmdd hh:mm:ss TZ``, ``yyyymmdd hh:mm:ss`` (TWS login
    zone), ``yyyymmdd-hh:mm:ss`` (UTC) and ``yyyymmdd`` (end of that day).
    Raises ValueError otherwise.
    """
    s = text.strip()
    if re.fullmatch(r"\d{8}-\d{2}:\d{2}:\d{2}", s):
        return dt.datetime.strptime(s, "%Y%m%d-%H:%M:%S").replace(tzinfo=dt.UTC)
    if re.fullmatch(r"\d{8}", s):
        d = dt.datetime.strptime(s, "%Y%m%d")
        return d.replace(hour=23, minute=59, second=59, tzinfo=ZoneInfo(default_tz))
    m = re.fullmatch(r"(\d{8})\s+(\d{2}:\d{2}:\d{2})(?:\s+(\S+))?", s)
    if not m:
        raise ValueError(f"bad end date/time {text!r}")
    tz = ZoneInfo(m.group(3)) if m.group(3) else ZoneInfo(default_tz)
    return dt.datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H:%M:%S").replace(tzinfo=tz)


def chunk_duration(bar_secs: int) -> tuple[str, int]:
    """The duration string (and its length in seconds) for one chunk of a long range.

    Intraday bars below 3 minutes use exact second windows (the documented step
    table, capped at a day); larger bars use whole weeks, which IB and the
    calendar agree on (7 x 86400 s), so consecutive chunks tile the range exactly.
    """
    if bar_secs >= 86400:
        weeks = 52
    elif bar_secs >= 1800:
        weeks = 4
    elif bar_secs >= 180:
        weeks = 1
    else:
        best = 0
        for max_dur, lo, hi in STEP_TABLE:
            if lo <= bar_secs <= hi and max_dur <= 86400:
                best = max(best, max_dur)
        return f"{best} S", best
    return f"{weeks} W", weeks * 7 * 86400


def one_request_days(bar_secs: int, start: dt.datetime, end: dt.datetime, *,
                     weekends: bool = False) -> int | None:
    """``N`` for one ``"N D"`` request ending at ``end`` that holds every bar of
    ``[start, end)``, or None where IB's step sizes do not allow one (intraday bars
    only; bars of a day or more keep their chunks).

    For intraday bars IB counts a duration in days as trading days (sessions) back
    from the end, as ``ibhost sim`` does. A session's trade date lies within a day of
    the UTC dates it spans, so the sessions touching the range are at most the
    weekdays (every day for ``weekends``: crypto) from the day before ``start``'s UTC
    date to the day after ``end``'s: 30 calendar days of hourly bars are one request
    of about 24 D, not two of 4 W."""
    if not 60 <= bar_secs < 86400:
        return None
    first = start.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    last = end.astimezone(dt.UTC).date() + dt.timedelta(days=1)
    span = (last - first).days + 1
    if span > 400:  # far past what intraday bars allow in one request: not counted
        return None
    n = span if weekends else sum(
        1 for i in range(span) if (first + dt.timedelta(days=i)).weekday() < 5)
    lo, hi = step_limits(n * 86400)
    return n if lo <= bar_secs <= hi else None


# KTRDR-style timeframes: the short names for IB bar sizes
TIMEFRAMES = {
    "1s": "1 secs", "5s": "5 secs", "10s": "10 secs", "15s": "15 secs", "30s": "30 secs",
    "1m": "1 min", "2m": "2 mins", "3m": "3 mins", "5m": "5 mins", "10m": "10 mins",
    "15m": "15 mins", "20m": "20 mins", "30m": "30 mins", "1h": "1 hour", "2h": "2 hours",
    "3h": "3 hours", "4h": "4 hours", "8h": "8 hours", "1d": "1 day", "1w": "1 week",
    "1M": "1 month",
}
