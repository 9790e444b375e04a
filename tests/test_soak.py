"""``ibhost soak``, short: the whole tree on the simulator under mixed load with a
fault every few seconds, every invariant checked (the long run is the same command
with ``--minutes 60``; docs/operations.md)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_a_short_soak_has_no_violation() -> None:
    res = subprocess.run([sys.executable, "-m", "ibhost.cli", "soak", "--minutes", "0.5",
                          "--fault-every", "5", "--callers", "3", "--seed", "3", "--json"],
                         capture_output=True, text=True, timeout=300)
    out = res.stdout
    assert res.returncode == 0, out[-4000:] + res.stderr[-4000:]
    result = json.loads(out[out.index("\n{") + 1:])
    assert result["violations"] == []
    assert sum(result["faults"].values()) >= 4, result["faults"]
    req = result["requests"]
    assert req["bars"] > 20 and req["order_key"] > 3, req
    assert result["pacing_violations"] == 0
    assert result["order_events"] > 0 and result["quote_events"] > 0
    assert "| orders doubled | 0 |" in out and "| orders lost | 0 |" in out
