"""The suite passes whatever the machine's date and hour: the date-sensitive tests run
again with the wall clock moved (libfaketime, Debian's ``faketime``) to a Saturday,
Christmas, the Thanksgiving half day, 03:00 and 16:00 in New York, and both nights
of a daylight-saving change.

Every process of a run sees the same moved clock (a fixed offset, not a fixed start,
so the simulator, the connector and a supervised tree agree with each other)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

ET = ZoneInfo("America/New_York")
ROOT = Path(__file__).resolve().parent.parent

# (why, the moment in New York)
MOMENTS = [
    ("a Saturday", dt.datetime(2026, 12, 5, 10, 0, tzinfo=ET)),
    ("Christmas, a holiday", dt.datetime(2026, 12, 25, 12, 0, tzinfo=ET)),
    ("the Thanksgiving half day, after its 13:00 close", dt.datetime(2026, 11, 27, 13, 30,
                                                                     tzinfo=ET)),
    ("03:00, before pre-market", dt.datetime(2026, 12, 2, 3, 0, tzinfo=ET)),
    ("16:00, the close", dt.datetime(2026, 12, 2, 16, 0, tzinfo=ET)),
    ("01:30 on the night clocks go back", dt.datetime(2026, 11, 1, 1, 30, tzinfo=ET)),
    ("03:30 on the night clocks go forward", dt.datetime(2027, 3, 14, 3, 30, tzinfo=ET)),
]

# The tests whose code reads a calendar, a price or "now" from this machine's clock:
# order guards, the gap-filler and its calendars, the KTRDR and bridge contracts,
# "no bars after now", the bridge's day-counted executions. (The simulator's own
# sessions run on its pinned clock, whatever this machine's date; the gap-filler's
# kill -9 loops test crash safety, not dates, and are left to the main run.)
SELECTION = [
    "tests/test_gateway.py::test_each_guard",
    "tests/test_gapfill.py",
    "tests/test_ktrdr_contract.py",
    "tests/test_bridge_contract.py",
    "tests/test_connector_requests.py::test_no_ib_request_for_bars_after_now",
    "-k", "not kill_9",
]

FAKETIME = shutil.which("faketime")


def _offset(moment: dt.datetime) -> int:
    return int(moment.timestamp() - dt.datetime.now(dt.UTC).timestamp())


def _run(moment: dt.datetime, tmp: Path) -> subprocess.CompletedProcess[str]:
    assert FAKETIME is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    cmd = [FAKETIME, "-f", f"{_offset(moment):+d}s", sys.executable, "-m", "pytest", "-q",
           "-p", "no:cacheprovider", "--basetemp", str(tmp), "-x", *SELECTION]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=400)


@pytest.mark.skipif(FAKETIME is None, reason="needs Debian's faketime (libfaketime); "
                    ".ci/run installs it")
@pytest.mark.skipif("FAKETIME" in os.environ, reason="the whole run is already under a "
                    "moved clock (libfaketime does not nest)")
@pytest.mark.timeout(900)
def test_date_sensitive_tests_pass_at_any_date_and_hour() -> None:
    assert FAKETIME is not None
    # the clock really moves, in this process's children too
    moment = MOMENTS[0][1]
    seen = subprocess.run([FAKETIME, "-f", f"{_offset(moment):+d}s", sys.executable, "-c",
                           "import time; print(time.time())"], capture_output=True,
                          text=True, check=True).stdout
    assert abs(float(seen) - moment.timestamp()) < 60, seen
    # a short base directory: the runs' Unix socket paths must stay under 108 bytes
    base = Path(tempfile.mkdtemp(prefix="ibd", dir="/tmp"))
    try:
        with ThreadPoolExecutor(4) as pool:  # most of a run is waiting: four at a time
            runs = list(pool.map(lambda i: _run(MOMENTS[i][1], base / str(i)),
                                 range(len(MOMENTS))))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    failed = [(why, moment.isoformat(), r.stdout[-6000:] + r.stderr[-2000:])
              for (why, moment), r in zip(MOMENTS, runs, strict=True) if r.returncode != 0]
    assert not failed, failed
    for r in runs:  # each ran the whole selection
        assert " passed" in r.stdout and " failed" not in r.stdout, r.stdout[-500:]
