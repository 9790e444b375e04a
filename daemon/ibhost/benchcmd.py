"""``ibhost bench [--quick]``: runs ``bench/suite.py`` from the source checkout.

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

SUITE = Path(__file__).resolve().parents[2] / "bench" / "suite.py"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure the tree against direct ib_async (bench/)")
    p.add_argument("--quick", action="store_true", help="fewer rounds (under 2 minutes)")
    p.add_argument("--out", default=None,
                   help="directory for the results (default: bench/results/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not SUITE.exists():
        print(f"ibhost bench: {SUITE} not found; run it from a source checkout "
              "(pip install -e .)", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("ibhost_bench_suite", SUITE)
    assert spec is not None and spec.loader is not None
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    argv = ["--quick"] if args.quick else []
    if args.out:
        argv += ["--out", args.out]
    result: int = suite.main(argv)
    return result
