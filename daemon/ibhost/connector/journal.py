"""The order-event journal: every order event gets a sequence number and is on disk
before anyone is told of it, so a consumer that went away (or a gateway killed with
-9) resumes from its last sequence number and misses nothing.

One JSON object per line, appended and fsynced. A torn last line (a crash in the
middle of a write) is cut off when the journal is opened; past ``keep`` events the
file is rewritten with the newest ``keep`` (atomically: the old file or the new).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..files import atomic_write

log = logging.getLogger("ibhost.connector.journal")


class OrderJournal:
    def __init__(self, path: Path, keep: int = 10_000) -> None:
        self.path = path
        self.keep = keep
        self.seq = 0
        self.events: deque[tuple[int, bytes]] = deque(maxlen=keep)  # (seq, line)
        self.exec_seen: set[str] = set()  # execIds published as executions
        self.commission_seen: set[str] = set()
        self.last_status: dict[str, tuple[str, float]] = {}  # order key -> (status, filled)
        self._fd: int | None = None
        self._load()

    def _load(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        good = 0
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raw = b""
        lines = raw.split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                if i < len(lines) - 1:
                    good += len(line) + 1
                continue
            try:
                ev = orjson.loads(line)
                seq = int(ev["seq"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("order journal %s: cut off a torn line at byte %s", self.path,
                            good)
                break
            if i == len(lines) - 1:  # the last line has no newline: torn
                log.warning("order journal %s: cut off an unterminated last line",
                            self.path)
                break
            good += len(line) + 1
            self._remember(seq, ev, bytes(line))
        if good != len(raw):
            with open(self.path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _remember(self, seq: int, ev: dict[str, Any], line: bytes) -> None:
        self.seq = max(self.seq, seq)
        self.events.append((seq, line))
        kind = ev.get("event")
        if kind == "execution" and ev.get("execId"):
            self.exec_seen.add(ev["execId"])
        elif kind == "commission" and ev.get("execId"):
            self.commission_seen.add(ev["execId"])
        elif kind == "status":
            self.last_status[order_key(ev)] = (ev.get("status", ""),
                                               float(ev.get("filled") or 0))

    def append(self, ev: dict[str, Any]) -> tuple[int, bytes]:
        """Give ``ev`` the next sequence number, write it, fsync: then it may be sent."""
        self.seq += 1
        ev["seq"] = self.seq
        line = orjson.dumps(ev)
        assert self._fd is not None
        os.write(self._fd, line + b"\n")
        os.fsync(self._fd)
        # kept as a right-sized copy: orjson's bytes carry a buffer of some KiB each,
        # and the journal keeps ``keep`` of them for as long as the connector runs
        line = bytes(memoryview(line))
        self._remember(self.seq, ev, line)
        if self.seq % self.keep == 0:
            self._compact()
        return self.seq, line

    def _compact(self) -> None:
        """Keep the newest ``keep`` events on disk (the file holds at most 2 x keep)."""
        body = b"".join(line + b"\n" for _, line in self.events)
        atomic_write(self.path, body)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def since(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """Events after ``seq`` (the oldest kept first)."""
        for s, line in self.events:
            if s > seq:
                yield s, line

    @property
    def first(self) -> int:
        return self.events[0][0] if self.events else self.seq + 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def order_key(ev: dict[str, Any]) -> str:
    """One order, as long as IB knows it: permId once IB gave one, else client/order id."""
    perm = ev.get("permId") or 0
    return f"p{perm}" if perm else f"c{ev.get('clientId')}/{ev.get('orderId')}"
