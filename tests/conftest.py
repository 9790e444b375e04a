"""Shared fixtures: an in-process simulator on a free port and real clients over TCP."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from ib_async import IB

from ibhost.sim import Simulator

logging.getLogger("ib_async").setLevel(logging.CRITICAL)
logging.getLogger("ib_insync").setLevel(logging.CRITICAL)


# Every simulator in the suite starts at this moment (a Wednesday, 10:30 in New York,
# mid-session) with a fixed seed, so prices, sessions and "now" never depend on the
# day or hour the suite runs. Tests that need another moment set it explicitly.
SIM_START = dt.datetime(2025, 12, 10, 15, 30, tzinfo=dt.UTC)
SIM_START_ARG = SIM_START.strftime("%Y-%m-%dT%H:%M:%SZ")
SEED = 7


@pytest.fixture
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """A simulator with pacing windows shrunk 100x (10 minutes -> 6 s).

    No request may earn a pacing violation at it (162, 420 or 100, as IB would
    send): a test that has one fails at teardown, unless it is marked
    ``pacing_violations_expected`` (it breaks IB's rules on purpose, with a raw
    client, to see the simulator answer as IB does)."""
    s = Simulator("127.0.0.1", 0, seed=SEED, pacing_scale=0.01, tick_interval=0.05,
                  start_time=SIM_START)
    await s.start()
    try:
        yield s
        # "forced" ones are the force-pacing fault's: IB's answer injected, not earned
        violations = [v for v in s.state()["stats"]["violations"] if v["rule"] != "forced"]
        if violations and request.node.get_closest_marker(
                "pacing_violations_expected") is None:
            pytest.fail(f"pacing violations at the simulator: {violations[:5]}")
    finally:
        await s.stop()


class ErrorLog:
    """Collects (reqId, code, message) from a client's errorEvent."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, str]] = []

    def __call__(self, req_id: int, code: int, msg: str, *_: Any) -> None:
        self.items.append((req_id, code, msg))

    def codes(self) -> list[int]:
        return [c for _, c, _ in self.items]

    async def wait_for(self, code: int, timeout: float = 3.0) -> tuple[int, int, str]:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            for item in self.items:
                if item[1] == code:
                    return item
            await asyncio.sleep(0.02)
        raise AssertionError(f"error {code} not seen; got {self.codes()}")


@pytest.fixture
def connect(sim: Simulator) -> Callable[..., Any]:
    """connect(client_id=1) -> (IB, ErrorLog); disconnects them all at teardown."""
    clients: list[IB] = []

    async def _connect(client_id: int = 1, timeout: float = 5.0) -> tuple[IB, ErrorLog]:
        ib = IB()
        ib.RaiseRequestErrors = True
        errors = ErrorLog()
        ib.errorEvent += errors
        clients.append(ib)
        await ib.connectAsync("127.0.0.1", sim.port, clientId=client_id, timeout=timeout)
        return ib, errors

    yield _connect
    for ib in clients:
        ib.disconnect()


@pytest.fixture
async def ib(connect: Callable[..., Any]) -> tuple[IB, ErrorLog]:
    pair: tuple[IB, ErrorLog] = await connect(1)
    return pair


async def eventually(
    check: Callable[[], Any], timeout: float = 3.0, interval: float = 0.02
) -> Any:
    """Poll until ``check()`` is truthy; return its value or fail."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
