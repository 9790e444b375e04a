"""The wait between failed connects.

Each failure waits the next of ``ib.backoff``'s steps (the last one repeats), with
``backoff_jitter`` either way. While the port was closed, a TCP probe every
``probe_interval`` ends the wait as soon as it opens again; a reconnect request or
a stop ends it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ..config import IBConfig
from .diagnostics import Diagnostics

# the session's log: the wait between attempts is part of the connection's lifecycle
log = logging.getLogger("ibhost.connector.session")


class Backoff:
    def __init__(
        self,
        cfg: IBConfig,
        diag: Diagnostics,
        *,
        wall: Callable[[], float],
        rng: Callable[[], float],
        wake: asyncio.Event,
        cut_short: Callable[[], bool],
    ) -> None:
        self.cfg = cfg
        self.diag = diag
        self.wall = wall
        self.rng = rng
        self.wake = wake  # set on a reconnect request or a stop
        self.cut_short = cut_short  # true once the wait must end

    def delay(self, failures: int) -> float:
        steps = self.cfg.backoff
        base = steps[min(failures, len(steps) - 1)]
        jitter = self.cfg.backoff_jitter
        return max(0.0, base * (1 + jitter * (2 * self.rng() - 1)))

    async def wait(self, delay: float, port_closed: bool) -> None:
        """Wait out the backoff; a TCP probe ends it early when a closed port opens."""
        loop = asyncio.get_running_loop()
        end = loop.time() + delay
        self.diag.nextAttemptAt = self.wall() + delay
        log.info("next attempt in %.1fs%s", delay,
                 f" (probing the port every {self.cfg.probe_interval:.1f}s)"
                 if port_closed else "")
        while not self.cut_short():
            left = end - loop.time()
            if left <= 0:
                return
            step = min(self.cfg.probe_interval, left)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(step):
                    await self.wake.wait()
            if port_closed and await self.probe():
                log.info("gateway port %s answers again; connecting now", self.cfg.port)
                return

    async def probe(self) -> bool:
        """TCP connect + close, no API handshake."""
        try:
            async with asyncio.timeout(self.cfg.probe_interval):
                _, writer = await asyncio.open_connection(self.cfg.host, self.cfg.port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return True
