"""Trading sessions and bar times per instrument kind, from exchange calendars.

Shared by the simulator (which bars exist) and the gap-filler (which bars are
missing), so the two agree on every holiday, half day and session break.

- equity: NYSE calendar; regular hours from the calendar (half days included),
  extended hours 04:00-20:00 ET (17:00 on half days).
- future: CME calendar; full session from the calendar's open to an hour before
  its close (the daily halt), regular hours 09:30-16:00 ET.
- fx: IDEALPRO 24x5, Sunday 17:15 ET to Friday 17:00 ET with a daily pause.

The calendars are loaded lazily: loading them takes ~0.4 s and the simulator
must be listening well before that.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

ET = ZoneInfo("US/Eastern")
_lock = threading.Lock()


@dataclass(frozen=True)
class Session:
    date: dt.date
    start: int  # epoch seconds, UTC
    end: int


@lru_cache(maxsize=4)
def _calendar(name: str) -> Any:
    import exchange_calendars as xc

    with _lock:
        return xc.get_calendar(name, start="1990-01-01", end="2031-12-31")


def warm_up() -> None:
    """Load the calendars (call from a background thread after the server listens)."""
    _calendar("XNYS")
    _calendar("CMES")


def _et(d: dt.date, hh: int, mm: int) -> int:
    return int(dt.datetime(d.year, d.month, d.day, hh, mm, tzinfo=ET).timestamp())


@lru_cache(maxsize=64)
def _equity_year(year: int) -> tuple[tuple[Session, Session], ...]:
    cal = _calendar("XNYS")
    sched = cal.schedule.loc[f"{year}-01-01":f"{year}-12-31"]
    out = []
    for day, row in sched.iterrows():
        d = day.date()
        o = int(row["open"].timestamp())
        c = int(row["close"].timestamp())
        half = c < _et(d, 16, 0)
        ext = Session(d, _et(d, 4, 0), _et(d, 17, 0) if half else _et(d, 20, 0))
        out.append((Session(d, o, c), ext))
    return tuple(out)


@lru_cache(maxsize=64)
def _future_year(year: int) -> tuple[tuple[Session, Session], ...]:
    cal = _calendar("CMES")
    sched = cal.schedule.loc[f"{year}-01-01":f"{year}-12-31"]
    out = []
    for day, row in sched.iterrows():
        d = day.date()
        o = int(row["open"].timestamp())
        c = int(row["close"].timestamp()) - 3600
        rth = Session(d, _et(d, 9, 30), min(_et(d, 16, 0), c))
        out.append((rth, Session(d, o, c)))
    return tuple(out)


@lru_cache(maxsize=64)
def _fx_year(year: int) -> tuple[tuple[Session, Session], ...]:
    out = []
    d = dt.date(year, 1, 1)
    while d.year == year:
        if d.weekday() < 5 and not (d.month == 1 and d.day == 1) and not (
            d.month == 12 and d.day == 25
        ):
            prev = d - dt.timedelta(days=1)
            s = Session(d, _et(prev, 17, 15), _et(d, 17, 0))
            out.append((s, s))
        d += dt.timedelta(days=1)
    return tuple(out)


_KINDS = {"equity": _equity_year, "future": _future_year, "fx": _fx_year}


def sessions(kind: str, start: int, end: int, rth: bool) -> list[Session]:
    """Sessions of ``kind`` overlapping [start, end) (epoch seconds)."""
    y0 = dt.datetime.fromtimestamp(start, dt.UTC).year
    y1 = dt.datetime.fromtimestamp(end, dt.UTC).year + 1
    out: list[Session] = []
    for y in range(max(y0, 1990), min(y1, 2031) + 1):
        for r, e in _KINDS[kind](y):
            s = r if rth else e
            if s.end > start and s.start < end:
                out.append(s)
    return out


def sessions_before(kind: str, end: int, n: int, rth: bool) -> list[Session]:
    """The last ``n`` sessions starting before ``end`` (for 'N D' durations)."""
    out: list[Session] = []
    year = dt.datetime.fromtimestamp(end, dt.UTC).year
    while len(out) < n and year >= 1990:
        chunk = [r if rth else e for r, e in _KINDS[kind](year)]
        chunk = [s for s in chunk if s.start < end]
        out = chunk + out
        year -= 1
    return out[-n:]


def is_open(kind: str, t: int, rth: bool = False) -> bool:
    return any(s.start <= t < s.end for s in sessions(kind, t, t + 1, rth))


def _hours_string(kind: str, tz: ZoneInfo, rth: bool, today: dt.date, days: int = 7) -> str:
    """IB's tradingHours/liquidHours: ``20261120:0930-20261120:1600;20261121:CLOSED``."""
    start = int(dt.datetime(today.year, today.month, today.day, tzinfo=tz).timestamp())
    sess = {s.date: s for s in sessions(kind, start - 86400, start + days * 86400, rth)}
    parts = []
    for i in range(days):
        d = today + dt.timedelta(days=i)
        s = sess.get(d)
        if s is None:
            parts.append(f"{d:%Y%m%d}:CLOSED")
            continue
        a = dt.datetime.fromtimestamp(s.start, tz)
        b = dt.datetime.fromtimestamp(s.end, tz)
        parts.append(f"{a:%Y%m%d:%H%M}-{b:%Y%m%d:%H%M}")
    return ";".join(parts)


def trading_hours(kind: str, tz_name: str, today: dt.date) -> tuple[str, str]:
    """(tradingHours, liquidHours) for the week starting ``today``."""
    tz = ZoneInfo(tz_name)
    return _hours_string(kind, tz, False, today), _hours_string(kind, tz, True, today)


DAY, WEEK = 86400, 7 * 86400


def bar_windows(kind: str, start: int, end: int, bar: int,
                rth: bool) -> list[tuple[int, int, str]]:
    """(from, to, label) of the bars whose start falls in [start, end): intraday bars
    are aligned to the clock in New York, the first of a session starting at its
    open (09:30, 10:00, 11:00 ... for 1-hour bars); daily, weekly and monthly bars
    group whole sessions (label yyyymmdd of the first)."""
    out: list[tuple[int, int, str]] = []
    sess = sessions(kind, start - 40 * DAY if bar >= DAY else start, end, rth)
    if bar < DAY:
        for s in sess:
            origin = int(dt.datetime.combine(
                dt.datetime.fromtimestamp(s.start, ET).date(), dt.time(),
                tzinfo=ET).timestamp())
            a = s.start
            while a < s.end:
                b = min(s.end, origin + ((a - origin) // bar + 1) * bar)
                if start <= a < end:
                    out.append((a, b, ""))
                a = b
        return out
    groups: dict[object, list[Session]] = {}
    for s in sess:
        if bar == DAY:
            key: object = s.date
        elif bar == WEEK:
            key = s.date.isocalendar()[:2]
        else:
            key = (s.date.year, s.date.month)
        groups.setdefault(key, []).append(s)
    for g in groups.values():
        first, last = g[0], g[-1]
        d0 = dt.datetime.combine(first.date, dt.time(), tzinfo=dt.UTC).timestamp()
        if start <= d0 < end or start <= first.start < end:
            out.append((first.start, last.end, first.date.strftime("%Y%m%d")))
    return out


def bar_stamps(kind: str, start: int, end: int, bar: int, rth: bool) -> list[int]:
    """The timestamps IB gives the bars in [start, end): the bar's start for intraday
    bars, midnight UTC of the (first) session's date for daily and larger bars."""
    wins = bar_windows(kind, start, end, bar, rth)
    if bar < DAY:
        return [a for a, _, _ in wins]
    out = []
    for _, _, label in wins:
        d = dt.datetime.strptime(label, "%Y%m%d").replace(tzinfo=dt.UTC)
        t = int(d.timestamp())
        if start <= t < end:
            out.append(t)
    return out
