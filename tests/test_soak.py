"""``ibhost soak``, two minutes: the whole tree on the simulator under mixed load with
a fault every 8 seconds (each kind of fault about once), every invariant checked (the
long run is the same command with ``--minutes 60``; docs/operations.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest


@pytest.mark.timeout(300)  # two minutes of load, the tree's start and stop
def test_a_short_soak_has_no_violation() -> None:
    # its own process group: if the soak overruns, the group is ended whole, so its
    # simulator and supervisord never outlive the test
    proc = subprocess.Popen([sys.executable, "-m", "ibhost.cli", "soak", "--minutes", "2",
                             "--fault-every", "8", "--callers", "3", "--seed", "3",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 0, out[-4000:] + err[-4000:]
    result = json.loads(out[out.index("\n{") + 1:])
    assert result["violations"] == []
    assert len(result["faults"]) >= 11, result["faults"]  # kinds of fault injected
    req = result["requests"]
    assert req["bars"] > 20 and req["order_key"] > 3, req
    assert result["pacing_violations"] == 0
    assert result["order_events"] > 0 and result["quote_events"] > 0
    assert "| orders doubled | 0 |" in out and "| orders lost | 0 |" in out
