"""The wire: bursts spaced, at most LIMIT in any second by send time, order kept,
a gone connection's queue dropped. Driven by a stepped clock and the event loop."""

from __future__ import annotations

import asyncio
import itertools

from ibhost.connector.wire import GAP, LIMIT, Wire


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


async def test_a_burst_is_spaced_and_no_second_holds_more_than_the_limit() -> None:
    clock = Clock()
    out: list[tuple[float, bytes]] = []
    noted = []
    wire = Wire(lambda m: out.append((clock.t, m)), lambda: noted.append(clock.t),
                clock=clock)
    for i in range(120):  # a read's worth of cancels, and more
        wire(b"%d" % i)
    assert len(out) == 1 and wire.queued == 119
    while wire.queued:  # time moves on in 1 ms steps; the wire's timer runs
        clock.t += 0.001
        await asyncio.sleep(0)
        if wire._timer is not None and wire._wait() <= 0:
            wire._timer.cancel()
            wire._drain()
    assert [m for _, m in out] == [b"%d" % i for i in range(120)]  # in order
    times = [t for t, _ in out]
    assert min(b - a for a, b in itertools.pairwise(times)) >= GAP - 1e-9
    for i, t in enumerate(times):  # any one second, by send time
        assert sum(1 for u in times[i:] if u - t < 1.0) <= LIMIT
    assert noted == times  # counted as they leave, not when asked
    assert wire.delayed == 119


async def test_a_gone_connection_drops_what_waits() -> None:
    clock = Clock()
    out: list[bytes] = []
    wire = Wire(out.append, lambda: None, clock=clock)
    for i in range(5):
        wire(b"%d" % i)
    wire.reset()
    assert wire.queued == 0 and wire._timer is None
    clock.t += 1.0
    wire(b"new")  # the next connection's first message leaves at once
    assert out == [b"0", b"new"]
