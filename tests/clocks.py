"""A clock that moves only when a test moves it, for timing logic without sleeps."""

from __future__ import annotations

import asyncio

from ibhost.connector.pacing import Scheduler


class StepClock:
    """Monotonic seconds that advance in ``step``s when told; after each step the
    scheduler re-reads the clock (its dispatcher would otherwise wait real time)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    async def run(self, scheduler: Scheduler, seconds: float, step: float = 0.0005) -> None:
        end = self.t + seconds
        while self.t < end:
            self.t = min(end, self.t + step)
            scheduler.poke()
            for _ in range(4):  # the dispatcher, the granted callers, their sends
                await asyncio.sleep(0)
