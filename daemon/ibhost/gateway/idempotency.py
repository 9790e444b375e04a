"""Idempotency keys for POST /orders: the first answer is kept and replayed.

The store is SQLite in WAL mode, one row per key: a keyed order writes one row, not
the whole store. One worker thread holds the connection, so the event loop never
waits on the disk. Rows expire by their TTL (pruned every ``prune_every`` seconds
through an index on the expiry, not by a sweep on every write) and the table is held
to ``max_rows``, oldest first. The file is owner-only: answers name orders and
accounts. A file SQLite finds corrupt is moved aside (``.corrupt``) and a fresh one
started; an ``idempotency.json`` from earlier releases is imported once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import IbhostError, bad_request

log = logging.getLogger("ibhost.gateway.idempotency")
T = TypeVar("T")

MAX_KEY = 128
KEEP_SECONDS = 7 * 86400
MAX_ROWS = 100_000
PRUNE_EVERY = 600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,          -- insertion order: the oldest is evicted first
    key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,               -- the answer, JSON
    at REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires);
"""
_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise bad_request("Idempotency-Key", f"must be 1-{MAX_KEY} printable characters")
    return key


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    key: str
    fingerprint: str
    status: int
    body: Any
    at: float
    expires: float


@dataclass
class _KeyLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class CorruptStore(sqlite3.DatabaseError):
    """SQLite's integrity check found the file damaged."""


def _is_corrupt(e: sqlite3.DatabaseError) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    return isinstance(e, CorruptStore) or (code is not None and code & 0xFF in _CORRUPT)


class IdempotencyStore:
    def __init__(self, path: Path, *, keep: float = KEEP_SECONDS, max_rows: int = MAX_ROWS,
                 prune_every: float = PRUNE_EVERY,
                 clock: Callable[[], float] = time.time) -> None:
        if path.suffix == ".json":  # a setting from the JSON-file releases
            log.warning("idempotency_file %s names the old JSON store; using %s",
                        path.name, path.with_suffix(".sqlite3").name)
            path = path.with_suffix(".sqlite3")
        self.path = path
        self.keep = keep
        self.max_rows = max_rows
        self.prune_every = prune_every
        self.clock = clock
        self.rows_written = 0  # rows inserted, replaced or updated: what a put costs
        self._locks: dict[str, _KeyLock] = {}
        # one thread owns the connection (sqlite3 connections stay in their thread)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="idempotency")
        self._db: sqlite3.Connection | None = None
        self._rows = 0
        self._pruned_at = -float("inf")

    # --- the event loop's side ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """One request per key at a time; the lock is dropped when nobody holds or
        awaits it, so the table of locks does not grow with every key ever seen."""
        held = self._locks.setdefault(key, _KeyLock())
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:
            held.users -= 1
            if held.users == 0:
                del self._locks[key]

    async def get(self, key: str, fp: str) -> Entry | None:
        """The unexpired answer for ``key``; a conflict if it was for another body."""
        entry = await self._run(self._get, key)
        if entry is None:
            return None
        if entry.fingerprint != fp:
            raise IbhostError("conflict", "this Idempotency-Key was used with a different "
                              "request body", field="Idempotency-Key")
        return entry

    async def put(self, key: str, fp: str, status: int, body: Any,
                  ttl: float | None = None) -> None:
        now = self.clock()
        entry = Entry(key, fp, status, body, now, now + (self.keep if ttl is None else ttl))
        await self._run(self._put, [entry])

    async def put_many(self, entries: Iterable[Entry]) -> None:
        """Many entries in one transaction (an import)."""
        await self._run(self._put, list(entries))

    async def refresh(self, key: str, body: Any) -> bool:
        """Replace the stored answer's body (the order's newer status); keeps its age."""
        return await self._run(self._refresh, key, body)

    async def count(self) -> int:
        return await self._run(self._count)

    async def close(self) -> None:
        await self._run(self._close)
        self._pool.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._guarded, fn, *args)

    # --- the worker thread's side ------------------------------------------------------

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn``; a file found damaged while in use fails this call and is moved aside,
        so the next call starts a fresh store rather than failing forever."""
        try:
            return fn(*args)
        except sqlite3.DatabaseError as e:
            if self._db is not None and _is_corrupt(e):
                self._close()
                self._move_aside(e)
            raise

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as e:
                if not _is_corrupt(e):
                    raise
                self._move_aside(e)
                self._db = self._open()
            self._rows = self._db.execute("SELECT count(*) FROM entries").fetchone()[0]
            self._import_json()
            self._prune(force=True)
        return self._db

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # owner-only from the first byte; SQLite gives its -wal and -shm files the
        # database file's mode
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        try:
            db.execute("PRAGMA busy_timeout = 5000")
            db.execute("PRAGMA journal_mode = WAL")
            # a committed answer survives a power cut too: the order is at IB by then
            db.execute("PRAGMA synchronous = FULL")
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise CorruptStore(verdict)
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, e: sqlite3.DatabaseError) -> None:
        aside = self.path.with_name(self.path.name + ".corrupt")
        log.warning("idempotency store %s is damaged (%s); moved to %s, starting afresh",
                    self.path, type(e).__name__, aside.name)
        os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.path.with_name(self.path.name + suffix),
                           aside.with_name(aside.name + suffix))

    def _import_json(self) -> None:
        """Entries of the JSON store of earlier releases, once; the file is renamed."""
        old = self.path.with_suffix(".json")
        if not old.exists():
            return
        now = self.clock()
        try:
            data = json.loads(old.read_bytes())
            entries = [Entry(k, v["fingerprint"], int(v["status"]), v["body"], float(v["at"]),
                             float(v["at"]) + float(v.get("ttl", KEEP_SECONDS)))
                       for k, v in data.items()]
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            log.warning("old idempotency store %s is unreadable (%s); moved to %s.corrupt",
                        old.name, type(e).__name__, old.name)
            os.replace(old, old.with_name(old.name + ".corrupt"))
            return
        live = sorted((e for e in entries if e.expires > now), key=lambda e: e.at)
        self._put(live)
        os.replace(old, old.with_name(old.name + ".imported"))
        log.info("imported %d unexpired idempotency keys of %d from %s", len(live),
                 len(entries), old.name)

    def _get(self, key: str) -> Entry | None:
        row = self._conn().execute(
            "SELECT fingerprint, status, body, at, expires FROM entries WHERE key = ?",
            (key,)).fetchone()
        if row is None or row[4] <= self.clock():
            return None
        return Entry(key, row[0], row[1], json.loads(row[2]), row[3], row[4])

    def _put(self, entries: list[Entry]) -> None:
        db = self._conn()
        with self._transaction(db):
            for e in entries:
                # a new row (not an update in place) for a key whose entry expired
                # unpruned: it is the newest again
                self._rows -= db.execute("DELETE FROM entries WHERE key = ?",
                                         (e.key,)).rowcount
                db.execute("INSERT INTO entries (key, fingerprint, status, body, at, "
                           "expires) VALUES (?, ?, ?, ?, ?, ?)",
                           (e.key, e.fingerprint, e.status, json.dumps(e.body), e.at,
                            e.expires))
                self._rows += 1
            if self._rows > self.max_rows:
                self._rows -= db.execute(
                    "DELETE FROM entries WHERE seq IN "
                    "(SELECT seq FROM entries ORDER BY seq LIMIT ?)",
                    (self._rows - self.max_rows,)).rowcount
        self.rows_written += len(entries)
        self._prune()

    def _refresh(self, key: str, body: Any) -> bool:
        db = self._conn()
        with self._transaction(db):
            n = db.execute("UPDATE entries SET body = ? WHERE key = ?",
                           (json.dumps(body), key)).rowcount
        self.rows_written += n
        return n > 0

    def _prune(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._pruned_at < self.prune_every:
            return
        db = self._conn()
        with self._transaction(db):
            self._rows -= db.execute("DELETE FROM entries WHERE expires <= ?",
                                     (now,)).rowcount
        self._pruned_at = now

    def _count(self) -> int:
        n: int = self._conn().execute("SELECT count(*) FROM entries").fetchone()[0]
        return n

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextlib.contextmanager
    def _transaction(self, db: sqlite3.Connection) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
                self._rows = db.execute("SELECT count(*) FROM entries").fetchone()[0]
            raise
