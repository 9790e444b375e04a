"""What IB's codes say about the health of the connection in use.

1100 (IB lost its connectivity) and 2110 (IB's servers unreachable) degrade it until
1101 or 1102 (restored); a farm's broken notice (2103, 2105, 2157) degrades it until
that farm's OK (2104, 2106, 2158), which ends a 2110 as well; 10197 marks a competing
session. What the session does on a code besides (a clash, a resubscribe, a
reconnect) is the session's own.
"""

from __future__ import annotations

from collections.abc import Callable

from .diagnostics import Diagnostics

# farm notices: code -> (farm, broken?)
FARM_CODES = {
    2103: ("market_data", True), 2104: ("market_data", False),
    2105: ("hmds", True), 2106: ("hmds", False),
    2157: ("secdef", True), 2158: ("secdef", False),
}


def note(code: int, degraded: set[str], diag: Diagnostics, wall: Callable[[], float]) -> None:
    """Apply one code to the degraded reasons and to the farms' states."""
    if code == 1100:
        degraded.add("ib_connectivity_lost (1100)")
    elif code in (1101, 1102):
        degraded.discard("ib_connectivity_lost (1100)")
        degraded.discard("tws_server_connectivity (2110)")
    elif code == 2110:
        degraded.add("tws_server_connectivity (2110)")
    elif code in FARM_CODES:
        farm, broken = FARM_CODES[code]
        diag.farms[farm] = "broken" if broken else "ok"
        if broken:
            degraded.add(f"farm_{farm} ({code})")
        else:
            degraded.discard(f"farm_{farm} ({code - 1})")
            degraded.discard("tws_server_connectivity (2110)")
    elif code == 10197:
        diag.competingSession = True
        diag.competingSessionAt = wall()
