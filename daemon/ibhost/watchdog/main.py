"""``ibhost watchdog`` and ``ibhost events`` (supervisord's event listener)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from .. import config as config_mod
from ..cliargs import add_config_args, config_from_args
from ..config import Config
from ..ipc.server import serve_routes
from ..proc import config_error, setup_logging, stop_signals, wait_for_stop_signal
from .api import routes
from .core import Watchdog
from .events import events_path

log = logging.getLogger("ibhost.watchdog")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("watchdog", help="watch the tree from outside; sleep/wake recovery")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
    except config_mod.ConfigError as e:
        return config_error("watchdog", e)
    setup_logging(cfg.watchdog.log_level)
    return asyncio.run(_main(cfg))


async def _main(cfg: Config) -> int:
    stop = stop_signals()  # before announcing readiness
    cfg.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    wd = Watchdog(cfg)
    sock = str(cfg.path(cfg.watchdog.socket))
    server = await serve_routes(routes(wd, events_path(cfg)), sock)
    wd.start()
    log.info("watchdog serving %s; maintenance windows: %s", sock,
             ", ".join(w.text for w in wd.schedule.windows) or "none")
    await wait_for_stop_signal(stop)
    await wd.stop()
    await server.stop(sock)
    return 0
