"""The wire: bursts spaced, at most LIMIT in any second by send time, order kept,
a gone connection's queue dropped. Driven by a stepped clock and the event loop."""

from __future__ import annotations

import asyncio

from ibhost.connector.wire import BURST, GAP, LIMIT, Wire


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
    assert len(out) == BURST and wire.queued == 120 - BURST  # a few at once
    while wire.queued:  # time moves on in 1 ms steps; the wire's timer runs
        clock.t += 0.001
        await asyncio.sleep(0)
        if wire._timer is not None and wire._wait() <= 0:
            wire._timer.cancel()
            wire._drain()
    assert [m for _, m in out] == [b"%d" % i for i in range(120)]  # in order
    times = [t for t, _ in out]
    assert times[:BURST] == [100.0] * BURST
    # beyond a burst, spaced: any BURST + k messages span k gaps at least
    assert all(b - a >= GAP - 1e-9 for a, b in zip(times, times[BURST:], strict=False))
    for i, t in enumerate(times):  # any one second, by send time
        assert sum(1 for u in times[i:] if u - t < 1.0) <= LIMIT
    assert noted == times  # counted as they leave, not when asked
    assert wire.delayed == 120 - BURST


async def test_a_few_messages_at_a_time_leave_at_once() -> None:
    """A quote and its underlying's, each with its market-data type, every 200 ms:
    never held (a 12 ms gap between each held the last 36 ms). Busier, every message
    is spaced again."""
    clock = Clock()
    out: list[float] = []
    wire = Wire(lambda m: out.append(clock.t), lambda: None, clock=clock)
    for _ in range(40):
        for m in (b"type", b"option", b"type", b"stock"):
            wire(m)
        assert wire.queued == 0 and out[-4:] == [clock.t] * 4
        clock.t += 0.2
    for _ in range(10):  # ten at once: a burst leaves, the rest wait their gaps
        wire(b"x")
    assert wire.queued == 10 - BURST

    busy = Wire(lambda m: out.append(clock.t), lambda: None, clock=clock)
    for _ in range(LIMIT // 2):  # a second holding half the limit, the bucket full
        busy(b"x")
        clock.t += 0.04
    clock.t += 0.1
    busy(b"a")
    busy(b"b")  # no burst now: it waits its gap
    assert busy.queued == 1


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
    assert out == [b"%d" % i for i in range(BURST)] + [b"new"]
