"""How old the library's copy of the account is, per kind of state.

After the connection's sync, ib_async keeps positions, the portfolio, account
values, this client's orders and the executions current from IB's own pushes
(IB sends positions and orders on change, portfolio and account values on change
and at least every 3 minutes). Reading them needs no message to IB; the answer
says how long ago IB last sent that kind of state (the sync counts as a send).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# kind -> the library events that carry it
EVENTS = {
    "positions": ("positionEvent",),
    "portfolio": ("updatePortfolioEvent",),
    "account": ("accountValueEvent",),
    "summary": ("accountSummaryEvent",),
    "orders": ("openOrderEvent", "orderStatusEvent"),
    "executions": ("execDetailsEvent", "commissionReportEvent"),
}


class StateAges:
    def __init__(self, ib: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.synced_at: float | None = None
        self._last: dict[str, float] = {}
        for kind, names in EVENTS.items():
            for name in names:
                getattr(ib, name).connect(self._seen(kind))

    def _seen(self, kind: str) -> Callable[..., None]:
        def seen(*_: Any) -> None:
            self._last[kind] = self.clock()

        return seen

    def synced(self) -> None:
        """The library has just synchronised everything with IB (a new connection)."""
        self.synced_at = self.clock()
        self._last.clear()

    def age(self, kind: str) -> float:
        """Seconds since IB last sent this kind of state (0.0 before any sync)."""
        t = max(self._last.get(kind, -1e18), self.synced_at or -1e18)
        return max(0.0, self.clock() - t) if t > -1e17 else 0.0
