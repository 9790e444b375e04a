"""The bar store: ``DATA_DIR/{SYMBOL}_{timeframe}.csv``, KTRDR's layout.

First column the UTC timestamp written ``%Y-%m-%dT%H:%M:%SZ``, then open, high,
low, close, volume; ``pd.read_csv(path, index_col=0, parse_dates=True)`` reads
it back (KTRDR's ``LocalDataLoader``). The scan reads only the file's end (the
window that matters), backwards in blocks. A write keeps every existing line
byte for byte, adds the new bars in order, and replaces the file atomically
(temp, fsync, rename, fsync the directory): a kill at any instant leaves the old
file or the new one. A file with a line that cannot be parsed is never written.

No pandas here: the gap-filler reads and writes text.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import KeysView
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import atomic_write

HEADER = "timestamp,open,high,low,close,volume"
TIMEFRAME_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600,
                     "4h": 14400, "1d": 86400}
_NAME = re.compile(r"^(?P<symbol>[A-Za-z0-9.\-]+)_(?P<tf>\d+[mhd])\.csv$")
BLOCK = 1 << 16


class CorruptFile(ValueError):
    """A line of the file cannot be parsed; the file is left as it is."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path.name}: line {line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


def file_name(symbol: str, timeframe: str) -> str:
    return f"{symbol.upper()}_{timeframe}.csv"


def parse_name(name: str) -> tuple[str, str] | None:
    """``AAPL_1h.csv`` -> ("AAPL", "1h"); None for anything else."""
    m = _NAME.match(name)
    if not m or m.group("tf") not in TIMEFRAME_SECONDS:
        return None
    return m.group("symbol").upper(), m.group("tf")


def stamp(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(text: str) -> int:
    """The file's timestamp (``...Z``; also ``+00:00`` and ``YYYY-MM-DD`` as pandas
    may write them) as epoch seconds."""
    text = text.strip().strip('"')
    if not text:
        raise ValueError("empty timestamp")
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp())


def format_bar(t: int, b: dict[str, Any]) -> str:
    vol = float(b["volume"] or 0.0)
    return ",".join([stamp(t), *(repr(float(b[k])) for k in ("open", "high", "low", "close")),
                     str(int(vol)) if vol.is_integer() else repr(vol)])


def parse_line(line: str, lineno: int, path: Path) -> tuple[int, tuple[float, ...]]:
    parts = line.rstrip("\r\n").split(",")
    if len(parts) != 6:
        raise CorruptFile(path, lineno, f"{len(parts)} fields, expected 6")
    try:
        t = parse_stamp(parts[0])
        values = tuple(float(x) for x in parts[1:])
    except ValueError as e:
        raise CorruptFile(path, lineno, str(e)) from None
    return t, values


@dataclass
class Tail:
    """The end of a file from ``offset``: every line there (kept as text, in order),
    and the bars at or after ``since`` by timestamp (what the gap check looks at)."""

    path: Path
    size: int
    offset: int  # bytes before the tail (header included): kept untouched on writes
    since: int
    lines: list[tuple[int, str]] = field(default_factory=list)
    values: dict[int, tuple[float, ...]] = field(default_factory=dict)  # t >= since
    bytes_read: int = 0
    at_start: bool = False  # the tail is the whole file (the head is at most a header)

    @property
    def stamps(self) -> KeysView[int]:
        return self.values.keys()

    @property
    def last(self) -> int | None:
        return self.lines[-1][0] if self.lines else None


def read_tail(path: Path, since: int) -> Tail:
    """Read the file backwards until a bar before ``since`` (or the start): the lines
    from there to the end. Raises CorruptFile naming the line (counted from the end
    when the head was not read: -1 is the last line)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos, buf, read = size, b"", 0
        while pos > 0:
            step = min(BLOCK, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
            read += step
            if pos == 0:
                break
            nl = buf.find(b"\n")
            if nl < 0:
                continue
            end = buf.find(b"\n", nl + 1)
            first = buf[nl + 1:] if end < 0 else buf[nl + 1:end]
            try:
                if parse_stamp(first.split(b",", 1)[0].decode()) < since:
                    buf, pos = buf[nl + 1:], pos + nl + 1
                    break
            except ValueError:
                continue  # not a bar line: read further back
    offset = pos
    text = buf.decode("utf-8", errors="replace")
    if offset == 0 and text and not _is_bar(text.split("\n", 1)[0]):
        header, _, text = text.partition("\n")  # the header line stays in the head
        offset = len(header.encode()) + 1
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    tail = Tail(path, size, offset, since, bytes_read=read, at_start=pos == 0)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        t, values = parse_line(line, i - len(lines), path)
        tail.lines.append((t, line.rstrip("\r")))
        if t >= since and t not in tail.values:
            tail.values[t] = values
    return tail


def _is_bar(line: str) -> bool:
    try:
        parse_stamp(line.split(",", 1)[0])
        return True
    except ValueError:
        return False


def check_head(path: Path, head: bytes) -> None:
    """Every line before the tail parses (checked before the file is rewritten)."""
    lines = head.decode("utf-8", errors="replace").split("\n")
    for i, line in enumerate(lines, start=1):
        if not line.strip() or (i == 1 and not _is_bar(line)):
            continue
        parse_line(line, i, path)


def merge_write(tail: Tail, new: dict[int, dict[str, Any]],
                tolerance: float = 1e-6) -> tuple[int, int]:
    """Add ``new`` bars (timestamp -> bar) the file does not have; a bar it has that
    differs is kept as stored and counted. Returns (bars written, conflicts).
    The file is replaced atomically; one changed since it was read is refused."""
    have = {t for t, _ in tail.lines}
    added: list[tuple[int, str]] = []
    conflicts = 0
    for t, b in new.items():
        if t in have:
            stored = tail.values.get(t)
            want = tuple(float(b[k] or 0.0) for k in ("open", "high", "low", "close",
                                                      "volume"))
            if stored is not None and any(abs(x - y) > tolerance * max(1.0, abs(y))
                                          for x, y in zip(stored, want, strict=True)):
                conflicts += 1
            continue
        added.append((t, format_bar(t, b)))
    if not added:
        return 0, conflicts
    with open(tail.path, "rb") as f:
        if os.fstat(f.fileno()).st_size != tail.size:
            raise CorruptFile(tail.path, 0, "changed while it was being filled; next scan")
        head = f.read(tail.offset)
    check_head(tail.path, head)
    rows = sorted(tail.lines + added, key=lambda r: r[0])  # stable: equal stamps keep order
    atomic_write(tail.path, head + "".join(line + "\n" for _, line in rows).encode())
    return len(added), conflicts


def new_file(path: Path, bars: dict[int, dict[str, Any]]) -> int:
    """Create a file with ``bars`` (atomically)."""
    body = "".join(format_bar(t, bars[t]) + "\n" for t in sorted(bars))
    atomic_write(path, (HEADER + "\n" + body).encode())
    return len(bars)
