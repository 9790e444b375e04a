"""Helpers to run a real connector (in-process) against a simulator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ibhost import config
from ibhost.connector.main import Connector
from ibhost.connector.session import State
from ibhost.ipc.client import UnixClient
from ibhost.sim import Simulator

from .conftest import eventually as wait_until

__all__ = ["make_config", "running_connector", "wait_until"]

FAST = {
    "ib.settle_delay": 0.1,
    "ib.connect_timeout": 3,
    "ib.backoff": "0.5,1,2",
    "ib.probe_interval": 0.2,
    "ib.client_id_retry_delay": 0.2,
    "ib.heartbeat_interval": 0.3,
    "ib.heartbeat_timeout": 1.0,
    "ib.request_timeout": 10,
    # no maintenance window from the wall clock: a test run between 23:45 and 00:45
    # US/Eastern (IB's daily reset, region "na") otherwise saw "maintenance" answers;
    # the maintenance tests set their own windows
    "watchdog.region": "none",
}


def make_config(home: Path, sim: Simulator, **overrides: Any) -> config.Config:
    values: dict[str, Any] = {"ib.port": sim.port, "pacing.scale": sim.pacing_scale, **FAST}
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return config.load(home=home, env={}, overrides=values)


@contextlib.asynccontextmanager
async def running_connector(
    home: Path, sim: Simulator, *, wait_ready: bool = True, **overrides: Any
) -> AsyncIterator[tuple[Connector, UnixClient]]:
    cfg = make_config(home, sim, **overrides)
    con = Connector(cfg)
    await con.start()
    client = UnixClient(con.socket_path, read_timeout=60)
    try:
        if wait_ready:
            await con.session.wait_state(State.READY, State.DEGRADED, timeout=15)
        yield con, client
    finally:
        await client.close()
        await con.stop()
