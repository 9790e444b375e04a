"""``ibhost backfill SYMBOL --timeframe 1m --since 2025-01-01``: the first download
of a bar file, through the running connector, into the gap-filler's files.

It is the gap-filler's rule over a longer range: the bars the calendar expects
in [since, until) that the file lacks are fetched (streamed, oldest first) and
merged in batches, each batch written atomically. So it is resumable: after
Ctrl-C, a crash or a kill, running it again fetches only what is still missing.
Progress per chunk of bars as IB answers it (bars/s and the time left at that
rate): a bar on a terminal, a log line per chunk otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sys
import time
from typing import Any

from .. import config as config_mod
from ..cliargs import add_config_args, config_from_args
from ..config import Config
from ..connector.client import ConnectorClient
from ..errors import IbhostError
from ..ipc import IpcError
from ..proc import setup_logging
from ..progress import Progress
from . import store
from .core import GapFiller, expected_bars, history_body, runs

log = logging.getLogger("ibhost.backfill")
BATCH = 20_000  # bars per atomic write


def add_parser(sub: Any) -> None:
    p = sub.add_parser("backfill", help="download a symbol's bars into the bar files "
                                        "(resumable)")
    p.add_argument("symbol", help="AAPL, EUR.USD, ES ...")
    p.add_argument("--timeframe", "-t", required=True, choices=list(store.TIMEFRAME_SECONDS))
    p.add_argument("--since", required=True, help="first day, e.g. 2025-01-01 (UTC)")
    p.add_argument("--until", default=None, help="end (default now), e.g. 2025-06-30")
    p.add_argument("--extended-hours", action="store_true",
                   help="outside regular trading hours too")
    p.add_argument("--batch", type=int, default=BATCH, help=argparse.SUPPRESS)
    add_config_args(p)
    p.set_defaults(func=run)


async def _flush(path: Any, got: dict[int, dict[str, Any]]) -> int:
    """Merge a batch into the file (one atomic write); empties ``got``."""
    if not got:
        return 0
    tail = await asyncio.to_thread(store.read_tail, path, min(got))
    n, _ = await asyncio.to_thread(store.merge_write, tail, got)
    got.clear()
    return n


def _when(text: str) -> int:
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp())


async def backfill(cfg: Config, symbol: str, tf: str, since: int, until: int, rth: bool,
                   connector: ConnectorClient, tty: bool = False,
                   batch: int = BATCH) -> dict[str, Any]:
    filler = GapFiller(cfg, connector)
    filler.dir.mkdir(parents=True, exist_ok=True)
    path = filler.dir / store.file_name(symbol, tf)
    name = path.name
    if not path.exists():
        store.new_file(path, {})
    bar = store.TIMEFRAME_SECONDS[tf]
    c = await filler.contract(symbol)
    whole = await asyncio.to_thread(store.read_tail, path, since)
    expected = await asyncio.to_thread(expected_bars, c["kind"], since, until, bar, rth)
    missing = [t for t in expected
               if t not in whole.stamps and not filler.state.known_empty(name, t)]
    report = Progress(len(missing), unit="bar", desc=name, tty=tty,
                      emit=lambda text: log.info("%s", text))
    written = 0
    chunks = 0
    try:
        for a, b in runs(missing, expected):
            lines = connector.historical_lines(history_body(c, tf, rth, a, b + bar))
            got: dict[int, dict[str, Any]] = {}
            seen: set[int] = set()
            try:
                async for line in lines:
                    if "error" in line:
                        raise IbhostError.from_dict(line)
                    if "bars" not in line:  # the head, or the closing count
                        continue
                    for bar_ in line["bars"]:
                        t = int(dt.datetime.fromisoformat(bar_["timestamp"]).timestamp())
                        seen.add(t)
                        got[t] = bar_
                    chunks += 1
                    report.update(len(line["bars"]), f"chunk {chunks}, " + (
                        f"up to {line['bars'][-1]['timestamp']}" if line["bars"]
                        else "no bars (a closed day)"))
                    if len(got) >= batch:
                        written += await _flush(path, got)
                written += await _flush(path, got)
            finally:
                await lines.aclose()
            want = [t for t in expected if a <= t <= b]
            for ea, eb in runs([t for t in want if t not in seen], expected):
                filler.state.add_empty(name, ea, eb)  # a halt: not asked again
            await asyncio.to_thread(filler.state.save)
    finally:
        report.close()
    return {"file": str(path), "expected": len(expected), "missing": len(missing),
            "written": written}


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
    except config_mod.ConfigError as e:
        print(f"ibhost backfill: configuration error: {e}", file=sys.stderr)
        return 2
    setup_logging(cfg.gapfill.log_level)
    try:
        since = _when(args.since)
        until = _when(args.until) if args.until else int(time.time())
    except ValueError as e:
        print(f"ibhost backfill: --since/--until: {e}", file=sys.stderr)
        return 2
    if since >= until:
        print("ibhost backfill: --since must be before --until", file=sys.stderr)
        return 2
    symbol = args.symbol.upper().replace("/", ".")
    rth = not args.extended_hours and f"{symbol}_{args.timeframe}" not in \
        cfg.gapfill.extended_hours

    async def go() -> int:
        connector = ConnectorClient(str(cfg.connector_socket), connect_timeout=2.0,
                                    read_timeout=cfg.gateway.connector_timeout)
        try:
            h = await connector.health()
            if h.get("status") not in ("ok", "degraded"):
                print(f"ibhost backfill: the connector is {h.get('status')}: "
                      f"{h.get('reason')}", file=sys.stderr)
                return 1
            out = await backfill(cfg, symbol, args.timeframe, since, until, rth, connector,
                                 tty=sys.stderr.isatty(), batch=max(1, args.batch))
        except (IpcError, IbhostError) as e:
            print(f"ibhost backfill: {e}", file=sys.stderr)
            return 1
        finally:
            await connector.close()
        print(f"{out['file']}: {out['written']:,} bars written "
              f"({out['missing']:,} were missing of {out['expected']:,} expected)")
        return 0

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        print("\nibhost backfill: interrupted; run it again to resume", file=sys.stderr)
        return 130
