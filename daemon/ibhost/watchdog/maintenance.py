"""IB's scheduled reset windows, during which the watchdog does not escalate.

IB restarts its servers nightly and the gateway logs off weekly; connections
drop then by design. Defaults per region (local exchange time), configurable
with ``watchdog.maintenance`` as ``"daily HH:MM-HH:MM"`` or ``"sun HH:MM-HH:MM"``
(the syntax and the defaults: ``ibhost/windows.py``).
"""

from __future__ import annotations

from ..windows import REGIONS, Schedule, Window, parse_window

__all__ = ["REGIONS", "Schedule", "Window", "parse_window"]
