"""The OpenAPI document against the running tree, with schemathesis: every operation,
every check (status codes, content types, response schemas, valid data accepted,
invalid data refused, never a server error, every answer within 10 s). The rules JSON
Schema cannot state are kept out of the valid data by tests/st_hooks.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ibhost.sim import Simulator

from .test_tree import KEY, Tree, running_tree

pytestmark = pytest.mark.skipif(shutil.which("st") is None and sys.platform != "linux",
                                reason="schemathesis not installed")

# KTRDR's contract answers a well-formed request it cannot serve (an unknown or
# malformed symbol included) with 200 {"success": false, "error": ...}, as KTRDR's own
# service does: such answers are not acceptances of invalid data
KTRDR = ("/data/historical", "/data/validate", "/data/head-timestamp",
         "/data/symbol-info/{symbol}")

# answers that never end (tests/test_streams.py covers them)
STREAMS = ("/v1/stream", "/v1/stream/ws")

# 503 (IB or a program not ready) and 504 (the caller's deadline passed) are states
# of what the gateway stands in front of, documented for every operation; 500 is a bug
CONFIG = """
[checks]
enabled = true
not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503", "504"]
# every answer within 10 s: a caller's deadline is bounded (gateway.connector_timeout)
max_response_time = 10
""" + "".join(f"""
[[operations]]
include-path = "{path}"
enabled = false
""" for path in STREAMS) + "".join(f"""
[[operations]]
include-path = "{path}"
checks.negative_data_rejection.enabled = false
""" for path in KTRDR)


@pytest.fixture
async def tree_up(sim: Simulator, tmp_path: Path) -> AsyncIterator[Tree]:
    # a long download answers 504 within schemathesis' read timeout
    async with running_tree(sim, tmp_path, gateway="connector_timeout = 8") as t:
        yield t


@pytest.mark.timeout(900)
async def test_every_operation_conforms_to_the_openapi_document(tree_up: Tree,
                                                                tmp_path: Path) -> None:
    cfg = tmp_path / "schemathesis.toml"
    cfg.write_text(CONFIG)
    report = tmp_path / "st.txt"
    st = shutil.which("st") or str(Path(sys.executable).parent / "st")
    args = [st, "--config-file", str(cfg), "run", f"{tree_up.url}/openapi.json",
            "-H", f"X-API-Key: {KEY}",
            "--max-examples", os.environ.get("IBHOST_ST_EXAMPLES", "15"),
            "--seed", os.environ.get("IBHOST_ST_SEED", "20261122"),
            "--request-timeout", "20", "--no-color"]
    with report.open("wb") as out:
        # the rules JSON Schema cannot state: tests/st_hooks.py
        env = {**os.environ, "SCHEMATHESIS_HOOKS": str(Path(__file__).with_name("st_hooks.py"))}
        proc = await asyncio.create_subprocess_exec(*args, stdout=out, stderr=out,
                                                    cwd=tmp_path, env=env)
        code = await asyncio.wait_for(proc.wait(), 600)
    text = report.read_text()
    if os.environ.get("IBHOST_ST_REPORT"):  # the whole report, to read at leisure
        Path(os.environ["IBHOST_ST_REPORT"]).write_text(text)
    assert code == 0, text[-20000:]
