"""Progress of the long commands (``ibhost backfill``, ``ibhost bench``): a tqdm bar on
a terminal, a plain log line per step otherwise (a CI log, a pipe, a file).

Each step is reported when it is done (a chunk of bars, a scenario), so the figures are
what happened: the count so far, the rate since the start, and, with ``rate=True``, the
time left at that rate. tqdm is imported only to draw a bar; the supervised programs
never import this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO


def interval(seconds: float) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05`` (as tqdm writes times)."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """``total`` steps' worth of ``unit`` (bars, scenarios); ``update(n, note)`` when
    ``n`` more are done.

    ``tty``: draw a bar on ``out``; otherwise ``emit`` gets one line per update, e.g.
    ``AAPL_1m.csv: 7,020 of 21,450 bars (32%), 1,234 bars/s, ETA 0:12; chunk 3``.
    """

    def __init__(self, total: int, *, unit: str, desc: str, tty: bool,
                 emit: Callable[[str], None], out: TextIO | None = None,
                 rate: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(0, total)
        self.unit = unit
        self.desc = desc
        self.emit = emit
        self.rate = rate
        self.clock = clock
        self.done = 0
        self.t0 = clock()
        self.bar: Any = None
        if tty:
            import sys

            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit=unit, desc=desc,
                            file=out or sys.stderr, unit_scale=rate, dynamic_ncols=True,
                            smoothing=0.1, leave=True,
                            bar_format=None if rate else
                            "{desc}: {n_fmt}/{total_fmt} {unit}s |{bar}| [{elapsed}]")

    def begin(self, what: str) -> None:
        """What the next step is: shown on the bar, or a line ``desc: what...``."""
        if self.bar is not None:
            self.bar.set_description_str(f"{self.desc}: {what}")
        else:
            self.emit(f"{self.desc}: {what}...")

    def update(self, n: int, note: str = "") -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(min(n, max(0, self.total - self.bar.n)))
            return
        self.emit(self.line(note))

    def line(self, note: str = "") -> str:
        elapsed = self.clock() - self.t0
        shown = min(self.done, self.total) if self.total else self.done
        pct = f" ({100 * shown // self.total}%)" if self.total else ""
        text = f"{self.desc}: {shown:,} of {self.total:,} {self.unit}s{pct}"
        if self.rate:
            per_s = self.done / elapsed if elapsed > 0 else 0.0
            left = self.total - shown
            eta = interval(left / per_s) if per_s > 0 else "?"
            text += f", {per_s:,.0f} {self.unit}s/s, ETA {eta}" if left else \
                f", {per_s:,.0f} {self.unit}s/s, done in {interval(elapsed)}"
        else:
            text += f", {interval(elapsed)} so far"
        return text + (f"; {note}" if note else "")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
