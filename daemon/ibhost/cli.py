"""The ``ibhost`` command: one entry point, a subcommand per program."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__, ctl, demo
from .connector import main as connector_main
from .gapfill import backfill as backfill_main
from .gapfill import main as gapfill_main
from .gateway import main as gateway_main
from .sim import main as sim_main
from .watchdog import main as watchdog_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ibhost",
        description="Keep one healthy Interactive Brokers API connection on the host.",
    )
    parser.add_argument("--version", action="version", version=f"ibhost {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sim_main.add_parser(sub)
    connector_main.add_parser(sub)
    gateway_main.add_parser(sub)
    gapfill_main.add_parser(sub)
    backfill_main.add_parser(sub)
    watchdog_main.add_parser(sub)
    demo.add_parser(sub)
    ctl.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except BrokenPipeError:  # `ibhost ctl status | head -1`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return result


if __name__ == "__main__":
    sys.exit(main())
