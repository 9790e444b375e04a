"""``ibhost gapfill``: the supervised gap-filler."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from .. import config as config_mod
from ..cliargs import add_config_args, config_from_args
from ..config import Config
from ..connector.client import ConnectorClient
from ..ipc.server import serve_routes
from ..proc import config_error, setup_logging, stop_signals, wait_for_stop_signal
from .api import routes
from .core import GapFiller

log = logging.getLogger("ibhost.gapfill")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gapfill", help="keep local bar files complete (supervised)")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
    except config_mod.ConfigError as e:
        return config_error("gapfill", e)
    setup_logging(cfg.gapfill.log_level)
    return asyncio.run(_main(cfg))


async def _main(cfg: Config) -> int:
    stop = stop_signals()  # before announcing readiness
    cfg.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    connector = ConnectorClient(str(cfg.connector_socket), connect_timeout=2.0,
                                read_timeout=cfg.gateway.connector_timeout)
    filler = GapFiller(cfg, connector)
    sock = str(cfg.path(cfg.gapfill.socket))
    server = await serve_routes(routes(filler), sock)
    filler.start()
    log.info("gap-filler serving %s; files in %s, a scan every %gs", sock, filler.dir,
             cfg.gapfill.interval)
    await wait_for_stop_signal(stop)
    await filler.stop()
    await server.stop(sock)
    await connector.close()
    return 0
