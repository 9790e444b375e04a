"""``ibhost events``: supervisord's event listener, which counts program exits.

A separate module that imports next to nothing: it runs for the life of the tree
and needs neither aiohttp nor the watchdog.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .. import config as config_mod
from ..config import Config
from ..files import atomic_write


def add_parser(sub: Any) -> None:
    e = sub.add_parser("events", help="supervisord event listener (records program exits)")
    e.add_argument("--home", default=None)
    e.set_defaults(func=run_events)


def events_path(cfg: Config) -> Path:
    return cfg.run_dir / "events.json"


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
