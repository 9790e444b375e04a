"""Idempotency keys for POST /orders: the first answer is kept and replayed.

The store is a JSON file written atomically (temp file, fsync, rename, fsync of
the directory), so a crash leaves the old file or the new one, never a torn one,
and a retry after a gateway restart still finds the first answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ..errors import IbhostError, bad_request
from ..files import atomic_write

MAX_KEY = 128
KEEP_SECONDS = 7 * 86400


def check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise bad_request("Idempotency-Key", f"must be 1-{MAX_KEY} printable characters")
    return key


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, path: Path, clock: Any = time.time) -> None:
        self.path = path
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._data: dict[str, dict[str, Any]] = {}
        if path.exists():
            try:
                self._data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                # keep the unreadable file for inspection, start afresh
                with contextlib.suppress(OSError):
                    os.replace(path, path.with_suffix(".corrupt"))
                self._data = {}

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def get(self, key: str, fp: str) -> dict[str, Any] | None:
        entry = self._data.get(key)
        if entry is None or self.clock() - entry["at"] >= entry.get("ttl", KEEP_SECONDS):
            return None
        if entry["fingerprint"] != fp:
            raise IbhostError("conflict", "this Idempotency-Key was used with a different "
                              "request body", field="Idempotency-Key")
        return entry

    async def put(self, key: str, fp: str, status: int, body: Any,
                  ttl: float = KEEP_SECONDS) -> None:
        now = self.clock()
        self._data = {k: v for k, v in self._data.items()
                      if now - v["at"] < v.get("ttl", KEEP_SECONDS)}
        self._data[key] = {"fingerprint": fp, "status": status, "body": body, "at": now,
                           "ttl": ttl}
        blob = json.dumps(self._data, sort_keys=True).encode()
        await asyncio.to_thread(atomic_write, self.path, blob)
