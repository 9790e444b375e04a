"""The heartbeat: is IB still answering on the connection in use?

A probe is a reqCurrentTime, answered by any bytes from IB (``on_data`` is fed every
read). A half-open socket sends nothing; a slow gateway still sends. When the
connection is judged half-open the heartbeat asks its session to reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..config import IBConfig
from .diagnostics import Diagnostics

# the session's log: a missed heartbeat is part of the connection's lifecycle
log = logging.getLogger("ibhost.connector.session")


class Heartbeat:
    def __init__(
        self,
        ib: Any,
        cfg: IBConfig,
        diag: Diagnostics,
        *,
        wall: Callable[[], float],
        outstanding: Callable[[], bool],
        reconnect: Callable[[str], None],
    ) -> None:
        self.ib = ib
        self.cfg = cfg
        self.diag = diag
        self.wall = wall
        self.outstanding = outstanding  # is a caller waiting on IB?
        self.reconnect = reconnect
        self.last_rx = time.monotonic()  # last bytes from IB
        self._rx = asyncio.Event()  # set whenever bytes arrive (for the probe)

    def on_data(self, _data: bytes) -> None:
        self.last_rx = time.monotonic()
        self._rx.set()

    async def run(self) -> None:
        """Probe with reqCurrentTime every ``heartbeat_interval``, and at once when a
        request has been outstanding ``stall_after`` seconds with nothing received.
        A probe is answered by any bytes from IB within ``heartbeat_timeout`` (a
        slow gateway still sends; a half-open socket sends nothing). One failed
        probe of a stall, or ``heartbeat_misses`` idle ones in a row, is half-open."""
        misses = 0
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        last_probe = loop.time()
        tick = min(0.25, cfg.stall_after / 4, cfg.heartbeat_interval)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            stalled = time.monotonic() - self.last_rx >= cfg.stall_after and \
                self.outstanding()
            if not stalled and now - last_probe < cfg.heartbeat_interval:
                continue
            last_probe = now
            if await self.alive(cfg.heartbeat_timeout):
                misses = 0
                self.diag.lastHeartbeatAt = self.wall()
                self.diag.lastHeartbeatError = None
                continue
            misses += 1
            self.diag.heartbeatFailures += 1
            # a caller waiting on IB makes any failed probe a stall, whatever started
            # the probe: a routine probe sent just before a request must not cost the
            # caller a second probe's timeout
            stalled = stalled or self.outstanding()
            why = "requests outstanding, nothing received" if stalled else "idle probe"
            self.diag.lastHeartbeatError = f"no answer in {cfg.heartbeat_timeout:g}s " \
                                           f"({why}; {misses} in a row)"
            log.warning("heartbeat missed: %s", self.diag.lastHeartbeatError)
            if stalled or misses >= cfg.heartbeat_misses:
                self.reconnect(
                    f"heartbeat: no answer from IB in {cfg.heartbeat_timeout:g}s "
                    + ("with requests outstanding" if stalled else f"x{misses}")
                    + " (half-open socket)")
                return
            # an idle probe went unanswered: confirm at once rather than a whole
            # interval later (idle detection: interval + misses x timeout at most)
            last_probe = now - cfg.heartbeat_interval

    async def alive(self, timeout: float) -> bool:
        """Send reqCurrentTime; true when any bytes arrive within ``timeout``."""
        sent = time.monotonic()
        self._rx.clear()
        try:
            self.ib.client.reqCurrentTime()
        except ConnectionError:
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._rx.wait()
        await asyncio.sleep(0)  # a busy loop: read what is already waiting first
        return self.last_rx >= sent
