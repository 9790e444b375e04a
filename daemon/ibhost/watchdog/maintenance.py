"""IB's scheduled reset windows, during which the watchdog does not escalate.

IB restarts its servers nightly and the gateway logs off weekly; connections
drop then by design. Defaults per region (local exchange time), configurable
with ``watchdog.maintenance`` as ``"daily HH:MM-HH:MM"`` or ``"sun HH:MM-HH:MM"``
(the syntax and the defaults: ``ibhost/windows.py``).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ..windows import REGIONS, Window, parse_window

__all__ = ["REGIONS", "Schedule", "Window", "parse_window"]


class Schedule:
    def __init__(self, region: str, windows: tuple[str, ...] = (), tz: str = "") -> None:
        zone, defaults = REGIONS[region]
        self.tz = ZoneInfo(tz or zone)
        self.windows = [parse_window(w) for w in (windows or defaults)]

    def active(self, now: dt.datetime) -> Window | None:
        local = now.astimezone(self.tz)
        return next((w for w in self.windows if w.contains(local)), None)
