"""The gateway's view of the connector's health: polled in the background, served cached.

/health never waits on the connector longer than ``gateway.health_timeout``: a
stopped or stuck connector is reported as ``busy`` (the socket accepts but
nothing answers), a missing one as ``down``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..connector.client import ConnectorClient
from ..errors import IbhostError
from ..ipc import IpcError
from ..proc import cancel_and_wait

log = logging.getLogger("ibhost.gateway.health")
STALE_AFTER = 3.0
BUSY_AFTER = 0.5  # a poll unanswered this long reads as busy (polls every 0.5 s: <= 1 s)


# What a caller without a key reads instead of the connector's reason, which can name
# IB's host and port ("connecting to 10.0.0.5:4001") or quote IB's error text.
PUBLIC_REASONS = {"ok": "connected to IB", "degraded": "connected to IB, degraded",
                  "busy": "the connector is not answering",
                  "down": "not connected to IB",
                  "maintenance": "IB's scheduled maintenance"}


def public(h: dict[str, Any]) -> dict[str, Any]:
    """The health a caller without a key sees: the status, a reason in fixed words,
    and no connector detail (client id, IB's last error text)."""
    return {"status": h["status"], "reason": PUBLIC_REASONS.get(h["status"], h["status"]),
            "connector": None, "checkedAt": h.get("checkedAt")}


class HealthWatcher:
    def __init__(self, client: ConnectorClient, timeout: float,
                 interval: float = 0.5) -> None:
        self.client = client
        self.timeout = timeout
        self.interval = interval
        self.last: dict[str, Any] = {"status": "down", "reason": "not checked yet",
                                     "connector": None, "checkedAt": None}
        self._checked_mono = 0.0
        self._inflight_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> dict[str, Any]:
        """Ask the connector now (bounded by the timeout) and remember the answer."""
        now = time.time()
        self._inflight_since = time.monotonic()
        try:
            h = await asyncio.wait_for(
                self.client.health(read_timeout=self.timeout), self.timeout)
            result = {"status": h.get("status", "down"), "reason": h.get("reason", ""),
                      "connector": h}
        except (TimeoutError, IpcError) as e:
            timed_out = isinstance(e, TimeoutError) or (isinstance(e, IpcError) and e.timeout)
            if timed_out:
                result = {"status": "busy", "reason": "the connector did not answer within "
                          f"{self.timeout:g}s (stopped or overloaded)", "connector": None}
            else:
                result = {"status": "down", "reason": "the connector is not running "
                          "(its socket does not accept connections)", "connector": None}
        except IbhostError as e:
            result = {"status": "down", "reason": e.message, "connector": None}
        result["checkedAt"] = now
        self._inflight_since = None
        self.last = result
        self._checked_mono = time.monotonic()
        return result

    def cached(self) -> dict[str, Any]:
        mono = time.monotonic()
        if self._inflight_since is not None and \
                mono - self._inflight_since > min(self.timeout, BUSY_AFTER):
            # the poll under way has had no answer yet: say so now, not at its timeout
            return {**self.last, "status": "busy", "reason": "the connector has not "
                    f"answered for {mono - self._inflight_since:.1f}s (stopped or "
                    "overloaded)", "connector": None}
        age = mono - self._checked_mono
        if self._checked_mono and age > STALE_AFTER + self.timeout:
            return {**self.last, "status": "busy",
                    "reason": f"no answer from the connector for {age:.0f}s"}
        return self.last

    async def _loop(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="health-watch")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
