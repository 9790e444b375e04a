"""Writing a consumer's queued events to its socket, for SSE and WebSocket alike."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from .broker import Broker
from .consumer import Consumer

SLOW_GRACE = 5.0  # seconds a consumer closed for being slow has to read why


def abort_later(request: web.Request) -> Any:
    """A consumer closed for being too slow is told why when it next reads; one that
    still reads nothing ``SLOW_GRACE`` seconds later loses its connection."""
    def abort() -> None:
        t = request.transport
        if t is not None and not t.is_closing():
            t.abort()

    return lambda: asyncio.get_running_loop().call_later(SLOW_GRACE, abort)


async def pump_events(c: Consumer, broker: Broker, heartbeat: float, write: Any, fmt: Any,
                idle: bytes | None) -> None:
    m = broker.m
    while not c.closed:
        try:
            async with asyncio.timeout(heartbeat):  # not wait_for: it can drop a cancel
                await c.wake.wait()
        except TimeoutError:
            if idle is not None:
                await write(idle)
            continue
        items = c.drain()
        if not items:
            continue
        m.lag.observe(len(items))
        if c.conflated:
            m.conflated.inc(c.conflated)
            c.conflated = 0
        for t, _, _ in items:
            m.events_out.labels(t).inc()
        c.sending = True  # no direct write may overtake these
        try:
            await write(fmt(items))
        finally:
            c.sending = False
