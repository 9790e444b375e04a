"""``ibhost bench [--quick]``: runs ``bench/suite.py`` from the source checkout;
``ibhost bench --peers [--ktrdr PATH] [--bridge PATH]`` runs ``bench/peers.py``
(ibhost beside the two services it replaces, started from their checkouts).

The benchmark code lives in ``bench/`` beside the package (it starts its own
simulator and tree and compares against direct ib_async in the same run); an
installed package without its checkout has no benchmarks to run.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"
SUITE = BENCH / "suite.py"
PEERS = BENCH / "peers.py"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure the tree against direct ib_async (bench/)")
    p.add_argument("--quick", action="store_true", help="fewer rounds (under 2 minutes)")
    p.add_argument("--out", default=None,
                   help="directory for the results (default: bench/results/)")
    p.add_argument("--peers", action="store_true",
                   help="ibhost beside KTRDR's IB host service and the wheel-strat bridge "
                        "(each started from a checkout given with --ktrdr / --bridge) and "
                        "direct ib_async, on identical simulators")
    p.add_argument("--ktrdr", default=None, metavar="PATH",
                   help="with --peers: a checkout of kpiteira/ktrdr")
    p.add_argument("--bridge", default=None, metavar="PATH",
                   help="with --peers: a checkout of dart-technologies/wheel-strat")
    p.add_argument("--peer-python", default=None, metavar="PYTHON",
                   help="with --peers: the interpreter the peers run with (default: this "
                        "one; it needs their packages)")
    p.set_defaults(func=run)


def peers_argv(args: argparse.Namespace) -> list[str] | None:
    """bench/peers.py's arguments, or None without --peers. --ktrdr, --bridge and
    --peer-python without --peers are a usage error (ValueError)."""
    given = [f for f, v in (("--ktrdr", args.ktrdr), ("--bridge", args.bridge),
                            ("--peer-python", args.peer_python)) if v]
    if not args.peers:
        if given:
            raise ValueError(f"{', '.join(given)} only with --peers")
        return None
    argv = ["--quick"] if args.quick else []
    for flag, value in (("--ktrdr", args.ktrdr), ("--bridge", args.bridge),
                        ("--peer-python", args.peer_python), ("--out", args.out)):
        if value:
            argv += [flag, value]
    return argv


def load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def run(args: argparse.Namespace) -> int:
    if not SUITE.exists():
        print(f"ibhost bench: {SUITE} not found; run it from a source checkout "
              "(pip install -e .)", file=sys.stderr)
        return 2
    try:
        peers = peers_argv(args)
    except ValueError as e:
        print(f"ibhost bench: {e}", file=sys.stderr)
        return 2
    if peers is not None:
        result: int = load(PEERS, "ibhost_bench_peers").main(peers)
        return result
    suite = load(SUITE, "ibhost_bench_suite")
    argv = ["--quick"] if args.quick else []
    if args.out:
        argv += ["--out", args.out]
    done: int = suite.main(argv)
    return done
