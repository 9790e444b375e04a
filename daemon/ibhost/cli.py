"""The ``ibhost`` command: one entry point, a subcommand per program.

Import cost is a feature: each program imports what it runs and nothing more, so
only the chosen command's module is imported (``ibhost gateway`` never loads the
simulator's numpy, nor ib_async); ``ibhost --help`` loads them all to list them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__

# command -> the module whose add_parser() declares it (in --help order)
COMMANDS = {
    "sim": "ibhost.sim.main",
    "connector": "ibhost.connector.main",
    "gateway": "ibhost.gateway.main",
    "gapfill": "ibhost.gapfill.main",
    "backfill": "ibhost.gapfill.backfill",
    "watchdog": "ibhost.watchdog.main",
    "events": "ibhost.watchdog.events",
    "demo": "ibhost.demo",
    "ctl": "ibhost.ctl",
    "bench": "ibhost.benchcmd",
    "soak": "ibhost.soak",
    "config": "ibhost.configcmd",
    "install": "ibhost.install", "uninstall": "ibhost.install",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser for every command, or only for ``only`` (the one being run)."""
    parser = argparse.ArgumentParser(
        prog="ibhost",
        description="Keep one healthy Interactive Brokers API connection on the host.",
    )
    parser.add_argument("--version", action="version", version=f"ibhost {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    modules = [COMMANDS[only]] if only in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # before any program imports prometheus_client (it reads this once, at import): no
    # `_created` series in any program's metrics (see ibhost/metrics.py)
    os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        result: int = args.func(args)
    except BrokenPipeError:  # `ibhost ctl status | head -1`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return result


if __name__ == "__main__":
    sys.exit(main())
