"""Keyed orders: the atomic writer under concurrency, the idempotency store, and the
order pipeline against the real simulator, connector and gateway."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from ibhost.files import atomic_write


def test_atomic_write_from_many_threads_leaves_one_whole_payload(tmp_path: Path) -> None:
    path = tmp_path / "d" / "state.json"
    payloads = [bytes([65 + i]) * (4096 * (i + 1)) for i in range(16)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(payloads))

    def writer(data: bytes) -> None:
        start.wait()
        try:
            for _ in range(20):
                atomic_write(path, data)
        except BaseException as e:  # collected, asserted on below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_bytes() in payloads
    assert os.listdir(path.parent) == ["state.json"]  # no temp file left behind
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_atomic_write_removes_its_temp_file_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "dir-in-the-way"
    (target / "child").mkdir(parents=True)  # a rename over a non-empty directory fails
    with pytest.raises(OSError):
        atomic_write(target, b"x")
    assert sorted(os.listdir(tmp_path)) == ["dir-in-the-way"]
