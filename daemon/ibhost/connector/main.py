"""``ibhost connector``: the process that owns the one IB connection."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from typing import Any

from aiohttp import web

from .. import config as config_mod
from ..cliargs import add_config_args, config_from_args
from ..config import Config
from ..ipc.server import serve_unix, stop_unix
from ..proc import (
    config_error,
    freeze_startup_objects,
    setup_logging,
    stop_signals,
    wait_for_stop_signal,
)
from . import backend as backend_mod
from .api import init_app
from .pacing import Scheduler
from .service import Service
from .session import Session
from .streams.hub import StreamHub

log = logging.getLogger("ibhost.connector")


class Connector:
    """Session + scheduler + service + control socket, started and stopped together."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.backend = backend_mod.load(cfg.ib.backend)
        self.session = Session(cfg, self.backend)
        memory = cfg.path(cfg.pacing.memory_file) if cfg.pacing.memory_file else None
        if memory is not None:
            memory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.scheduler = Scheduler(cfg.pacing, state_path=memory)
        self.service = Service(self.session, self.scheduler, clock=self.session.clock.now_dt)
        self.streams = StreamHub(self.service, cfg)
        self.app: web.Application = init_app(cfg, self.session, self.scheduler, self.service,
                                             self.streams)
        self._runner: web.AppRunner | None = None

    @property
    def socket_path(self) -> str:
        return str(self.cfg.connector_socket)

    async def start(self) -> Connector:
        self.cfg.connector_socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._runner = await serve_unix(self.app, self.socket_path)
        self.session.start()
        self.streams.start()
        log.info("connector serving %s; IB at %s:%s (%s)", self.socket_path,
                 self.cfg.ib.host, self.cfg.ib.port, self.backend.name)
        return self

    async def stop(self) -> None:
        """Disconnect from IB first, then close the socket."""
        await self.streams.stop()
        await self.session.stop()
        self.scheduler.close()
        if self._runner is not None:
            await stop_unix(self._runner, self.socket_path)
            self._runner = None

    async def __aenter__(self) -> Connector:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def add_parser(sub: Any) -> None:
    p = sub.add_parser("connector", help="hold the IB connection and serve connector.sock")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
    except config_mod.ConfigError as e:
        return config_error("connector", e)
    setup_logging(cfg.connector.log_level)
    if cfg.ib.backend == "ib_async":
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
    return asyncio.run(_main(cfg))


async def _main(cfg: Config) -> int:
    stop = stop_signals()  # before announcing readiness
    connector = Connector(cfg)
    try:
        await connector.start()
    except (OSError, ValueError) as e:
        print(f"ibhost connector: cannot serve {connector.socket_path}: {e}", file=sys.stderr)
        return 1
    freeze_startup_objects()
    await wait_for_stop_signal(stop)
    log.info("stopping: disconnecting from IB")
    await connector.stop()
    return 0
