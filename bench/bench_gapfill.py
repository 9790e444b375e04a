"""The gap-filler's scan: time and bytes read for N files of one year of 1-minute bars,
against reading the same files whole, in the same run.

    python bench/bench_gapfill.py [--files 500] [--days 30]

Writes N files (~6 MB each, 98,000 lines) under a temporary directory, then for
every file: the scan (read the last ``--days`` backwards, parse it, compare with
the calendar's expected bars) vs reading and parsing the whole file. Page cache
is warm for both (each pass reads every file once before it is timed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "daemon"))
from ibhost import calendars
from ibhost.gapfill import store
from ibhost.gapfill.core import expected_bars

END = int(dt.datetime(2025, 11, 1, tzinfo=dt.UTC).timestamp())
START = END - 365 * 86400


def one_year_text() -> bytes:
    bars = calendars.bar_windows("equity", START, END, 60, True)
    lines = [store.HEADER]
    for i, (a, _, _) in enumerate(bars):
        p = 100.0 + (i % 997) * 0.01
        lines.append(f"{store.stamp(a)},{p},{p + 0.05},{p - 0.05},{p + 0.01},{1000 + i % 50}")
    return ("\n".join(lines) + "\n").encode()


def scan(path: Path, since: int) -> tuple[int, int]:
    tail = store.read_tail(path, since)
    expected = expected_bars("equity", since, END, 60, True)
    missing = [t for t in expected if t not in tail.stamps]
    return tail.bytes_read, len(missing)


def whole(path: Path, since: int) -> tuple[int, int]:
    data = path.read_bytes()
    stamps = set()
    for i, line in enumerate(data.decode().splitlines()[1:], start=2):
        t, _ = store.parse_line(line, i, path)
        if t >= since:
            stamps.add(t)
    expected = expected_bars("equity", since, END, 60, True)
    return len(data), len([t for t in expected if t not in stamps])


def main(files: int, days: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="ibhost-bench-gapfill-"))
    try:
        text = one_year_text()
        paths = []
        for i in range(files):
            p = root / f"S{i:04d}_1m.csv"
            p.write_bytes(text)
            paths.append(p)
        since = END - int(days * 86400)
        lines = text.count(b"\n") - 1
        for p in paths:  # warm the page cache for both passes
            p.read_bytes()
        t0 = time.perf_counter()
        sb = sum(scan(p, since)[0] for p in paths)
        ts = time.perf_counter() - t0
        t0 = time.perf_counter()
        wb = sum(whole(p, since)[0] for p in paths)
        tw = time.perf_counter() - t0
        print(f"gap-filler scan of {files} files of one year of 1-minute bars ({lines:,} "
              f"lines, {len(text) / 1e6:.1f} MB each), last {days:g} days")
        print(f"  scan (tail)   {ts:7.2f} s, {sb / 1e6:9.1f} MB read")
        print(f"  read whole    {tw:7.2f} s, {wb / 1e6:9.1f} MB read")
        print(f"  scan / whole  time {ts / tw:.3f}x, bytes {sb / wb:.3f}x")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--days", type=float, default=30.0)
    a = ap.parse_args()
    main(a.files, a.days)
