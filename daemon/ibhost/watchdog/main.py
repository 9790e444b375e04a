"""``ibhost watchdog`` and ``ibhost events`` (supervisord's event listener)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .. import config as config_mod
from ..config import Config
from ..connector.main import add_config_args, config_from_args
from ..files import atomic_write
from ..ipc import serve_unix, stop_unix
from ..proc import config_error, setup_logging, stop_signals, wait_for_stop_signal
from .api import init_app
from .core import Watchdog

log = logging.getLogger("ibhost.watchdog")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("watchdog", help="watch the tree from outside; sleep/wake recovery")
    add_config_args(p)
    p.set_defaults(func=run)
    e = sub.add_parser("events", help="supervisord event listener (records program exits)")
    e.add_argument("--home", default=None)
    e.set_defaults(func=run_events)


def events_path(cfg: Config) -> Path:
    return cfg.run_dir / "events.json"


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
    runner = await serve_unix(init_app(wd, events_path(cfg)), sock)
    wd.start()
    log.info("watchdog serving %s; maintenance windows: %s", sock,
             ", ".join(w.text for w in wd.schedule.windows) or "none")
    await wait_for_stop_signal(stop)
    await wd.stop()
    await stop_unix(runner, sock)
    return 0


def run_events(args: argparse.Namespace) -> int:
    """supervisord eventlistener protocol: READY, header, payload, RESULT."""
    cfg = config_mod.load(home=args.home)
    path = events_path(cfg)
    counts: dict[str, int] = {}
    try:
        counts = json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    stdin, stdout = sys.stdin, sys.stdout
    while True:
        stdout.write("READY\n")
        stdout.flush()
        line = stdin.readline()
        if not line:
            return 0
        headers = dict(x.split(":", 1) for x in line.split())
        payload = stdin.read(int(headers.get("len", 0)))
        event = headers.get("eventname", "")
        if event in ("PROCESS_STATE_EXITED", "PROCESS_STATE_FATAL"):
            fields = dict(x.split(":", 1) for x in payload.split() if ":" in x)
            key = f"{fields.get('processname', '?')}:{event.rsplit('_', 1)[-1]}"
            counts[key] = counts.get(key, 0) + 1
            try:
                atomic_write(path, json.dumps(counts, sort_keys=True).encode())
            except OSError as e:
                sys.stderr.write(f"ibhost events: cannot write {path}: {e}\n")
        stdout.write("RESULT 2\nOK")
        stdout.flush()
