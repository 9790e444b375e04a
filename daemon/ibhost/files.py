"""Data files that survive a crash or kill at any moment."""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import zlib
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write temp, fsync, rename, fsync the directory: a reader (or a restart after a
    crash) sees the old file or the new one, never a torn one.

    Each write has its own temporary file (mkstemp in the same directory), so
    concurrent writers of one path never truncate or rename each other's temp file:
    the last rename wins and every reader sees one whole payload."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkstemp creates the file 0600 with O_EXCL: owner-only from the first byte (data
    # files may name orders and accounts), and a name no other writer holds
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode != 0o600:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TwoSlotFile:
    """Small state rewritten often (before each hard-paced IB request): two slots in one
    file, written in turn in place, each with a sequence number and a checksum.

    A write cut short by a crash spoils only the slot being written; the reader takes
    the newest whole slot, which is the state before that write. Nothing is renamed or
    truncated: on ext4 a rename over an existing file first flushes the new file's data
    (auto_da_alloc), which cost 0.85 ms at the median and 150 ms at p99 per write on the
    machine the benchmarks run on; a write in place costs microseconds."""

    MAGIC = b"IBH1"
    HEAD = struct.Struct("<4sQII")  # magic, sequence, length, crc32

    def __init__(self, path: Path, slot_size: int = 1 << 18) -> None:
        self.path = path
        self.slot_size = slot_size
        self.seq = 0
        self._fd: int | None = None

    def read(self) -> bytes | None:
        """The newest whole slot's payload (None: no file or no whole slot)."""
        try:
            with open(self.path, "rb") as f:
                slots = [f.read(self.slot_size) for _ in range(2)]
        except FileNotFoundError:
            return None
        best: tuple[int, bytes] | None = None
        for raw in slots:
            if len(raw) < self.HEAD.size:
                continue
            magic, seq, length, crc = self.HEAD.unpack_from(raw)
            payload = raw[self.HEAD.size:self.HEAD.size + length]
            if (magic == self.MAGIC and len(payload) == length
                    and self._crc(seq, payload) == crc and (best is None or seq > best[0])):
                best = (seq, payload)
        if best is None:
            return None
        self.seq = best[0]
        return best[1]

    def write(self, payload: bytes) -> bool:
        """Write ``payload`` over the older slot; False when it does not fit a slot."""
        if self.HEAD.size + len(payload) > self.slot_size:
            return False
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self.seq += 1
        head = self.HEAD.pack(self.MAGIC, self.seq, len(payload),
                              self._crc(self.seq, payload))
        os.pwrite(self._fd, head + payload, (self.seq % 2) * self.slot_size)
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def _crc(seq: int, payload: bytes) -> int:
        """Over the sequence, the length and the payload: a header torn between two
        writes does not pass for whole."""
        return zlib.crc32(struct.pack("<QI", seq, len(payload)) + payload)
