"""``ibhost bench --quick`` as CI runs it: every scenario runs and is written down
(the figures are reported, not asserted)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(300)
def test_bench_quick_runs_every_scenario_and_writes_its_table(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "ibhost.cli", "bench", "--quick", "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=280)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    # progress off a terminal: a line as each scenario begins and ends, on stderr
    done = re.findall(r"^ibhost bench: (\d) of 7 scenarios \(\d+%\), \d+:\d\d so far; "
                      r"(.+) took [\d.]+s$", p.stderr, re.M)
    assert [int(n) for n, _ in done] == list(range(1, 8)), p.stderr[-3000:]
    assert [name for _, name in done][1:] == ["latency", "bars", "message rate", "fan-out",
                                              "recovery", "start-up"]
    assert "ibhost bench: latency...\n" in p.stderr and "scenarios (" not in p.stdout
    r = json.loads((tmp_path / "quick.json").read_text())
    md = (tmp_path / "quick.md").read_text()
    for op in ("validate", "head_timestamp", "bars_390", "snapshot"):
        for n in (1, 10):
            row = r["latency"][f"{op}@{n}"]
            assert {"direct", "connector", "gateway"} <= set(row)
            assert row["gateway"]["n"] > 0 and row["gateway"]["p50_ms"] > 0
            assert f"| {op}@{n} |" in md
    assert r["bars"]["json"]["bars"] == r["bars"]["csv"]["bars"] == r["bars"]["direct"]["bars"]
    assert {"connector", "gateway", "watchdog", "gapfill", "tree"} <= set(r["rss_ready"])
    assert r["message_rate"]["violations"] == 0
    assert set(r["recovery"]) >= {"sim_restart_to_ok_s", "freeze_detected_s",
                                  "connector_kill9_to_ok_s", "wake_to_ok_s"}
    assert r["startup"]["bare_interpreter_ms"] > 0
    assert r["machine"]["cpus"] and "## Recovery" in md
