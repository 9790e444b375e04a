"""The wire: BURST back to back from a quiet second, then spaced, at most LIMIT in any
second by send time, order kept, a gone connection's queue dropped. Driven by a stepped clock and the event loop."""

from __future__ import annotations

import asyncio
import itertools

from ibhost.connector.wire import BURST, GAP, LIMIT, Wire


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _drain(wire: Wire) -> None:
    """Time moves on in 1 ms steps; the wire's timer runs when it is due."""
    if wire._timer is not None and wire._wait() <= 0:
        wire._timer.cancel()
        wire._drain()


async def test_a_burst_is_spaced_and_no_second_holds_more_than_the_limit() -> None:
    clock = Clock()
    out: list[tuple[float, bytes]] = []
    noted = []
    wire = Wire(lambda m: out.append((clock.t, m)), lambda: noted.append(clock.t),
                clock=clock)
    for i in range(120):  # a read's worth of cancels, and more
        wire(b"%d" % i)
    # from a quiet second the first BURST leave at once, the rest wait their turn
    assert len(out) == BURST and wire.queued == 120 - BURST
    assert {t for t, _ in out} == {100.0}
    while wire.queued:
        clock.t += 0.001
        await asyncio.sleep(0)
        _drain(wire)
    assert [m for _, m in out] == [b"%d" % i for i in range(120)]  # in order
    times = [t for t, _ in out]
    assert min(b - a for a, b in itertools.pairwise(times[BURST - 1:])) >= GAP - 1e-9
    for i, t in enumerate(times):  # any one second, by send time
        assert sum(1 for u in times[i:] if u - t < 1.0) <= LIMIT
    assert noted == times  # counted as they leave, not when asked
    assert wire.delayed == 120 - BURST


async def test_a_burst_into_a_busy_second_is_spaced_from_its_first_message() -> None:
    """A second that already holds BURST messages lets no burst through: each new
    message leaves GAP after the last, however many arrive at once."""
    clock = Clock()
    out: list[float] = []
    wire = Wire(lambda m: out.append(clock.t), lambda: None, clock=clock)
    for _ in range(BURST):  # a busy second: BURST messages, 50 ms apart
        wire(b"x")
        clock.t += 0.05
    assert len(out) == BURST and wire.queued == 0
    for _ in range(5):
        wire(b"y")
    # the first leaves (50 ms after the last, more than GAP), the others wait
    assert len(out) == BURST + 1 and wire.queued == 4
    while wire.queued:
        clock.t += 0.001
        await asyncio.sleep(0)
        _drain(wire)
    assert min(b - a for a, b in itertools.pairwise(out[BURST - 1:])) >= GAP - 1e-9
    clock.t += 1.0  # a quiet second again: a burst leaves at once
    for _ in range(3):
        wire(b"z")
    assert wire.queued == 0 and out[-3:] == [clock.t] * 3


async def test_a_gone_connection_drops_what_waits() -> None:
    clock = Clock()
    out: list[bytes] = []
    wire = Wire(out.append, lambda: None, clock=clock)
    for i in range(BURST + 5):
        wire(b"%d" % i)
    assert wire.queued == 5
    wire.reset()
    assert wire.queued == 0 and wire._timer is None
    clock.t += 1.0
    wire(b"new")  # the next connection's first message leaves at once
    assert out == [b"%d" % i for i in range(BURST)] + [b"new"]
