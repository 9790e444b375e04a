"""The configuration options every program takes (--home, --config, --set, ...).

A leaf module: programs that never talk to IB import it without the connector.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import config as config_mod
from .config import Config


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", default=None, help="ibhost home (default $IBHOST_HOME or "
                                                "~/.ibhost)")
    p.add_argument("--config", default=None, help="TOML file (default HOME/ibhost.toml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting (repeatable)")
    p.add_argument("--host", default=None, help="IB Gateway host (ib.host)")
    p.add_argument("--port", type=int, default=None, help="IB Gateway port (ib.port)")
    p.add_argument("--client-id", type=int, default=None, help="first client id "
                                                               "(ib.client_id_start)")


def config_from_args(args: argparse.Namespace) -> Config:
    return config_mod.load(home=args.home, config_file=args.config,
                           overrides=overrides_from_args(args))


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``--set`` items and the shortcut flags, as ``{"section.key": value}``."""
    overrides: dict[str, Any] = config_mod.parse_set(args.set)
    if args.host is not None:
        overrides["ib.host"] = args.host
    if args.port is not None:
        overrides["ib.port"] = args.port
    if args.client_id is not None:
        overrides["ib.client_id_start"] = args.client_id
    return overrides
