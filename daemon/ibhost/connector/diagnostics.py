"""The session's states and the diagnostics it keeps for /status.

States: down -> connecting -> synchronizing -> ready <-> degraded -> down. The
diagnostics hold the current state with its cause, the farms' states, the last
disconnect, IB error, reconnect attempt and heartbeat, and a count of every IB code.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class State(StrEnum):
    DOWN = "down"
    CONNECTING = "connecting"
    SYNCHRONIZING = "synchronizing"
    READY = "ready"
    DEGRADED = "degraded"


USABLE = (State.READY, State.DEGRADED)


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


@dataclass
class Diagnostics:
    state: str = State.DOWN.value
    since: float | None = None
    stateReason: str = "starting"
    clientId: int | None = None
    serverVersion: int | None = None
    accounts: list[str] = field(default_factory=list)
    farms: dict[str, str] = field(default_factory=lambda: {
        "market_data": "unknown", "hmds": "unknown", "secdef": "unknown"})
    degradedReasons: list[str] = field(default_factory=list)
    competingSession: bool = False
    competingSessionAt: float | None = None
    connectedSince: float | None = None
    lastDisconnectAt: float | None = None
    lastDisconnectReason: str | None = None
    lastIbErrorAt: float | None = None
    lastIbErrorCode: int | None = None
    lastIbErrorMessage: str | None = None
    lastReconnectAttemptAt: float | None = None
    lastReconnectError: str | None = None
    reconnectAttempts: int = 0
    reconnectFailures: int = 0
    clientIdClashes: int = 0
    lastHeartbeatAt: float | None = None
    lastHeartbeatError: str | None = None
    heartbeatFailures: int = 0
    ibCodes: Counter[int] = field(default_factory=Counter)
    nextAttemptAt: float | None = None
    ibClockOffsetSeconds: float = 0.0  # IB's clock minus this machine's

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ibCodes"] = {str(k): v for k, v in sorted(self.ibCodes.items())}
        for k in ("since", "competingSessionAt", "connectedSince", "lastDisconnectAt",
                  "lastIbErrorAt", "lastReconnectAttemptAt", "lastHeartbeatAt",
                  "nextAttemptAt"):
            d[k] = _iso(d[k])
        return d
