"""The simulator's trading hours: the shared calendars (``ibhost.calendars``)."""

from ..calendars import (
    ET,
    Session,
    ZoneInfo,
    bar_windows,
    is_open,
    sessions,
    sessions_before,
    trading_hours,
    warm_up,
)

__all__ = ["ET", "Session", "ZoneInfo", "bar_windows", "is_open", "sessions",
           "sessions_before", "trading_hours", "warm_up"]
