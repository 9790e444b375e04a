"""The gap-filler: find the bars a file should have and does not, ask the connector
for them (background priority), and add them to the file.

Which bars a file should have comes from exchange calendars (``ibhost.calendars``,
the same model the simulator uses): the contract's kind from its details (a US
stock on the NYSE calendar, a future on CME's with its daily break, forex 24/5),
regular or extended hours per file, holidays and half days. A weekend, a holiday,
a half day's afternoon or the hours outside the session are never gaps; a missing
bar on a trading day always is, and so is the tail from the last stored bar to
now (complete bars only). A range IB answers with no data (a halt) is remembered,
across restarts, and not asked again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import calendars, ibrules, models
from ..config import Config
from ..connector.client import ConnectorClient
from ..errors import IbhostError
from ..files import atomic_write
from ..ipc import IpcError
from ..proc import cancel_and_wait
from ..symbols import resolve
from . import store
from .metrics import GapfillMetrics

log = logging.getLogger("ibhost.gapfill")

KINDS = {"STK": "equity", "FUT": "future", "CASH": "fx"}


@dataclass
class FileStatus:
    file: str
    lastBar: str | None = None
    lastScanAt: float | None = None
    gapsFound: int = 0
    gapsFilled: int = 0
    barsWritten: int = 0
    conflicts: int = 0
    missingBars: int = 0  # still missing after the last scan (no data at IB, or failed)
    lastError: str | None = None
    bytesRead: int = 0


@dataclass
class State:
    """What survives a restart: the round-robin cursor, ranges IB had no data for,
    and the contracts symbols resolved to."""

    path: Path
    cursor: int = 0
    nodata: dict[str, list[list[int]]] = field(default_factory=dict)
    contracts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        try:
            d = json.loads(path.read_text())
            return cls(path, int(d.get("cursor", 0)), dict(d.get("nodata", {})),
                       dict(d.get("contracts", {})))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError, TypeError) as e:
            log.warning("ignoring unreadable state %s: %s", path, e)
            return cls(path)

    def save(self) -> None:
        atomic_write(self.path, json.dumps({"cursor": self.cursor, "nodata": self.nodata,
                                            "contracts": self.contracts}).encode())

    def known_empty(self, name: str, t: int) -> bool:
        return any(a <= t <= b for a, b in self.nodata.get(name, ()))

    def add_empty(self, name: str, a: int, b: int) -> None:
        ranges = self.nodata.setdefault(name, [])
        ranges.append([a, b])
        if len(ranges) > 500:  # bounded: the oldest are forgotten first
            del ranges[:-500]


def expected_bars(kind: str, since: int, now: int, bar: int, rth: bool) -> list[int]:
    """Timestamps of the complete bars a file should hold in [since, now)."""
    out = []
    for a, b, label in calendars.bar_windows(kind, since, now, bar, rth):
        if b > now:
            continue  # still forming: not a gap yet
        if bar >= calendars.DAY:
            t = int(dt.datetime.strptime(label, "%Y%m%d").replace(tzinfo=dt.UTC).timestamp())
        else:
            t = a
        if since <= t < now:
            out.append(t)
    return out


def history_body(c: dict[str, Any], tf: str, rth: bool, start: int,
                 end: int) -> dict[str, Any]:
    """The connector request for a file's bars in [start, end), at background priority."""
    return {**c["spec"], "barSize": ibrules.TIMEFRAMES[tf], "whatToShow": c["whatToShow"],
            "useRTH": rth, "priority": "background",
            "start": dt.datetime.fromtimestamp(start, dt.UTC).isoformat(),
            "end": dt.datetime.fromtimestamp(end, dt.UTC).isoformat()}


def runs(stamps: list[int], expected: list[int]) -> list[tuple[int, int]]:
    """Group missing stamps into ranges of consecutive expected bars."""
    index = {t: i for i, t in enumerate(expected)}
    out: list[tuple[int, int]] = []
    for t in stamps:
        if out and index[t] == index[out[-1][1]] + 1:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


class GapFiller:
    def __init__(self, cfg: Config, connector: ConnectorClient,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.g = cfg.gapfill
        self.dir = cfg.path(self.g.data_dir)
        self.connector = connector
        self.clock = clock
        self.state = State.load(cfg.path(self.g.state_file))
        self.files: dict[str, FileStatus] = {}
        self.metrics = GapfillMetrics()
        self.last_scan: dict[str, Any] | None = None
        self.next_scan_at: float | None = None
        self.waiting_for: str | None = None
        # for the status pages (KTRDR's gap-filler statistics): failures since start,
        # the last ten of them, and the gaps filled on the current UTC day
        self.failures = 0
        self.recent_errors: deque[dict[str, Any]] = deque(maxlen=10)
        self._filled_today: tuple[dt.date, int] | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- files -------------------------------------------------------------------------

    def list_files(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        names = []
        for p in self.dir.iterdir():
            parsed = store.parse_name(p.name)
            if parsed and parsed[1] in self.g.timeframes and p.is_file():
                names.append(p.name)
        self.metrics.files.set(len(names))
        return sorted(names)

    def _next_batch(self) -> list[str]:
        names = self.list_files()
        if not names:
            return []
        n = min(self.g.files_per_cycle, len(names))
        start = self.state.cursor % len(names)
        batch = [names[(start + i) % len(names)] for i in range(n)]
        self.state.cursor = (start + n) % len(names)
        return batch

    # --- the connector -----------------------------------------------------------------

    async def ready(self) -> bool:
        try:
            h = await self.connector.health()
        except (IpcError, IbhostError) as e:
            self.waiting_for = f"the connector is not answering ({e})"
            return False
        if h.get("status") not in ("ok", "degraded"):
            self.waiting_for = f"the connector is {h.get('status')}: {h.get('reason')}"
            return False
        self.waiting_for = None
        return True

    async def contract(self, symbol: str) -> dict[str, Any]:
        """The contract a file's symbol names (KTRDR's rule), remembered."""
        hit = self.state.contracts.get(symbol)
        if hit is not None:
            return hit
        async def validate(spec: dict[str, Any]) -> dict[str, Any]:
            d: dict[str, Any] = models.plain(await self.connector.validate(spec))
            return d

        resolved = await resolve(symbol, None, validate)
        if resolved is not None:
            d, exact = resolved
            found = {"spec": exact, "kind": KINDS.get(d["secType"], "equity"),
                     "whatToShow": "BID" if d["secType"] == "CASH" else "TRADES"}
            self.state.contracts[symbol] = found
            return found
        raise IbhostError("not_found", f"no contract for {symbol}", field="symbol")

    # --- scanning ----------------------------------------------------------------------

    async def scan(self, names: list[str] | None = None) -> dict[str, Any]:
        """One cycle: the given files, or the next ``files_per_cycle`` round robin."""
        async with self._lock:
            t0 = time.perf_counter()
            batch = [n for n in names if (self.dir / n).is_file()] if names else \
                self._next_batch()
            results = []
            if batch and not await self.ready():
                results = [{"file": n, "skipped": self.waiting_for} for n in batch]
            else:
                for name in batch:
                    results.append(asdict(await self.scan_file(name)))
            await asyncio.to_thread(self.state.save)
            took = time.perf_counter() - t0
            self.metrics.scan_seconds.observe(took)
            self.metrics.last_scan.set(self.clock())
            self.last_scan = {"at": self.clock(), "seconds": round(took, 3), "files": results}
            return self.last_scan

    async def scan_file(self, name: str) -> FileStatus:
        st = self.files.setdefault(name, FileStatus(name))
        st.lastScanAt = self.clock()
        st.lastError = None
        parsed = store.parse_name(name)
        assert parsed is not None
        symbol, tf = parsed
        bar = store.TIMEFRAME_SECONDS[tf]
        now = int(self.clock())
        since = now - int(self.g.max_age_days * 86400)
        path = self.dir / name
        try:
            tail = await asyncio.to_thread(store.read_tail, path, since)
        except store.CorruptFile as e:
            return self._fail(st, "corrupt", f"not filled: {e} (the file is left as it is)")
        except OSError as e:
            return self._fail(st, "io", f"cannot read: {e}")
        st.bytesRead = tail.bytes_read
        st.lastBar = store.stamp(tail.last) if tail.last is not None else None
        try:
            c = await self.contract(symbol)
        except (IbhostError, IpcError) as e:
            return self._fail(st, "connector", f"contract for {symbol}: {e}")
        rth = f"{symbol}_{tf}" not in self.g.extended_hours
        if tail.at_start and tail.lines:  # a file younger than the window: from its start
            since = max(since, tail.lines[0][0])
        expected = await asyncio.to_thread(expected_bars, c["kind"], since, now, bar, rth)
        have = tail.stamps
        missing = [t for t in expected
                   if t not in have and not self.state.known_empty(name, t)]
        gaps = runs(missing, expected)
        st.gapsFound += len(gaps)
        self.metrics.gaps_found.inc(len(gaps))
        new: dict[int, dict[str, Any]] = {}
        for a, b in gaps:
            try:
                got = await self._fetch(c, tf, rth, a, b + bar)
            except (IbhostError, IpcError) as e:
                kind = "pacing" if isinstance(e, IbhostError) and e.code == "pacing" \
                    else "connector"
                self._fail(st, kind, f"{store.stamp(a)}..{store.stamp(b)}: {e}")
                if kind == "pacing" or isinstance(e, IpcError) or e.code in (
                        "unavailable", "timeout"):
                    break  # back off: the next cycle tries again
                continue
            want = [t for t in expected if a <= t <= b]
            filled = {t: got[t] for t in want if t in got}
            new.update(filled)
            if filled:
                st.gapsFilled += 1
                self.metrics.gaps_filled.inc()
                self._count_filled_today()
            # what IB has no bars for (a halt, before the listing) is not asked again
            empty = [t for t in want if t not in got]
            for ea, eb in runs(empty, expected):
                self.state.add_empty(name, ea, eb)
        if new:
            try:
                written, conflicts = await asyncio.to_thread(store.merge_write, tail, new)
            except store.CorruptFile as e:
                return self._fail(st, "corrupt", f"not written: {e} (left as it is)")
            except OSError as e:
                return self._fail(st, "io", f"cannot write: {e}")
            st.barsWritten += written
            st.conflicts += conflicts
            self.metrics.bars_written.inc(written)
            self.metrics.conflicts.inc(conflicts)
            last = max([*(t for t, _ in tail.lines), *new])
            st.lastBar = store.stamp(last)
            log.info("%s: %d gap(s), %d bar(s) written", name, len(gaps), written)
        st.missingBars = len([t for t in missing if t not in new])
        return st

    async def _fetch(self, c: dict[str, Any], tf: str, rth: bool, start: int,
                     end: int) -> dict[int, dict[str, Any]]:
        r = await self.connector.historical(history_body(c, tf, rth, start, end))
        return {int(dt.datetime.fromisoformat(b["timestamp"]).timestamp()): b
                for b in r["bars"]}

    def _fail(self, st: FileStatus, kind: str, message: str) -> FileStatus:
        st.lastError = message
        self.metrics.errors.labels(kind).inc()
        self.failures += 1
        self.recent_errors.append({"at": self.clock(), "file": st.file, "kind": kind,
                                   "error": message})
        log.warning("%s: %s", st.file, message)
        return st

    # --- the loop ----------------------------------------------------------------------

    def request_scan(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.scan()
            except Exception:  # one bad cycle must not stop the filler
                log.exception("scan failed")
            self.next_scan_at = self.clock() + self.g.interval
            self._wake.clear()
            try:
                async with asyncio.timeout(self.g.interval):  # wait_for can drop a cancel
                    await self._wake.wait()
            except TimeoutError:
                pass

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="gapfill")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def _today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC).date()

    def _count_filled_today(self) -> None:
        day = self._today()
        n = self._filled_today[1] if self._filled_today and self._filled_today[0] == day \
            else 0
        self._filled_today = (day, n + 1)

    @property
    def running(self) -> bool:
        """The scan loop is alive (it is started by ``ibhost gapfill``, not by tests)."""
        return self._task is not None and not self._task.done()

    def status(self) -> dict[str, Any]:
        today = self._filled_today
        return {
            "running": self.running, "timeframes": list(self.g.timeframes),
            "failures": self.failures, "recentErrors": list(self.recent_errors),
            "gapsFilledToday": today[1] if today and today[0] == self._today() else 0,
            "dataDir": str(self.dir), "files": len(self.list_files()),
            "interval": self.g.interval, "filesPerCycle": self.g.files_per_cycle,
            "maxAgeDays": self.g.max_age_days, "waitingFor": self.waiting_for,
            "lastScan": self.last_scan, "nextScanAt": self.next_scan_at,
            "perFile": {k: asdict(v) for k, v in sorted(self.files.items())},
        }
