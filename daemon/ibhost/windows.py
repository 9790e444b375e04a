"""IB's maintenance windows: their syntax and each region's defaults.

A leaf module: the configuration validates ``watchdog.maintenance`` with it and
the watchdog schedules by it (``watchdog/maintenance.py``), so config never
imports the watchdog.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
REGIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    # region -> (zone, windows): the nightly server reset and the weekly restart
    "na": ("US/Eastern", ("daily 23:45-00:45", "sun 00:00-03:00")),
    "eu": ("Europe/Zurich", ("daily 05:45-06:45", "sun 05:00-08:00")),
    "asia": ("Asia/Hong_Kong", ("daily 16:30-17:30", "sun 12:00-15:00")),
    "none": ("UTC", ()),
}
_RE = re.compile(r"^(daily|mon|tue|wed|thu|fri|sat|sun)\s+(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Window:
    day: int | None  # None = every day
    start: dt.time
    end: dt.time
    text: str

    def contains(self, t: dt.datetime) -> bool:
        """``t`` is local time in the window's zone."""
        cur = t.time()
        if self.start <= self.end:
            inside = self.start <= cur < self.end
            day = t.weekday()
        else:  # crosses midnight: belongs to the day it started on
            inside = cur >= self.start or cur < self.end
            day = t.weekday() if cur >= self.start else (t.weekday() - 1) % 7
        return inside and (self.day is None or self.day == day)


def parse_window(text: str) -> Window:
    m = _RE.match(text.strip().lower())
    if not m:
        raise ValueError(f"maintenance window {text!r}: expected 'daily HH:MM-HH:MM' or "
                         "'sun HH:MM-HH:MM'")
    d, h1, m1, h2, m2 = m.groups()
    try:
        start, end = dt.time(int(h1), int(m1)), dt.time(int(h2), int(m2))
    except ValueError:
        raise ValueError(f"maintenance window {text!r}: bad time") from None
    return Window(None if d == "daily" else DAYS[d], start, end, text.strip())


class Schedule:
    """A region's windows (or the configured ones) in their zone."""

    def __init__(self, region: str, windows: tuple[str, ...] = (), tz: str = "") -> None:
        zone, defaults = REGIONS[region]
        self.tz = ZoneInfo(tz or zone)
        self.windows = [parse_window(w) for w in (windows or defaults)]

    def active(self, now: dt.datetime) -> Window | None:
        local = now.astimezone(self.tz)
        return next((w for w in self.windows if w.contains(local)), None)

    def ends(self, now: dt.datetime, window: Window) -> dt.datetime:
        """When ``window``, active at ``now``, ends (UTC)."""
        local = now.astimezone(self.tz)
        end = local.replace(hour=window.end.hour, minute=window.end.minute, second=0,
                            microsecond=0)
        if end <= local:
            end += dt.timedelta(days=1)
        return end.astimezone(dt.UTC)
