"""``examples/``: the backend container's script, run for real against a running tree
on loopback (as ``docker compose`` would run it, without Docker), and its compose
file and Dockerfile read as Docker would read them."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from ibhost.sim import Simulator

from .test_tree import KEY, running_tree

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
APP = EXAMPLES / "backend" / "app.py"


def run_app(url: str, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IB_HOST_SERVICE")}
    env.update({"IB_HOST_SERVICE_URL": url, "SYMBOL": "AAPL", "QUOTES": "2",
                "PYTHONPATH": str(ROOT / "clients" / "python")})  # the client alone
    if key:
        env["IB_HOST_SERVICE_API_KEY"] = key
    return subprocess.run([sys.executable, str(APP)], capture_output=True, text=True,
                          env=env, timeout=90)


async def test_the_example_backend_reads_bars_quotes_and_places_an_order(
        sim: Simulator, tmp_path: Path) -> None:
    async with running_tree(sim, tmp_path) as t:
        r = await asyncio.to_thread(run_app, t.url, KEY)
        assert r.returncode == 0, r.stdout + r.stderr
        out = r.stdout
        assert f"ibhost at {t.url}: ok" in out
        bars = re.search(r"^bars: (\d+) hourly bars of AAPL, the last at (\S+)", out, re.M)
        assert bars and int(bars[1]) >= 20, out  # five sessions of 7 hourly bars
        assert bars[2] <= "2025-12-10"  # the simulator's clock, not the machine's
        # the first quote may still lack a side (IB sends bid and ask as separate ticks)
        assert len(re.findall(r"^quote: AAPL bid ", out, re.M)) == 2, out
        quotes = re.findall(r"^quote: AAPL bid ([\d.]+) ask ([\d.]+)", out, re.M)
        assert quotes and all(float(b) < float(a) for b, a in quotes), out
        order = re.search(r"^order: BUY 1 AAPL MKT -> order id (\d+), (\w+)$", out, re.M)
        assert order and order[2] in ("Submitted", "PreSubmitted", "Filled"), out

        # without the key the order is refused, and the script says so
        r = await asyncio.to_thread(run_app, t.url, None)
        assert r.returncode == 1 and "order refused: 401" in r.stderr, r.stdout + r.stderr
        assert "Traceback" not in r.stderr


def test_the_compose_file_builds_the_backend_and_passes_the_key() -> None:
    doc = yaml.safe_load((EXAMPLES / "compose.yaml").read_text())
    backend = doc["services"]["backend"]
    context = (EXAMPLES / backend["build"]["context"]).resolve()
    dockerfile = context / backend["build"]["dockerfile"]
    assert context == ROOT and dockerfile.is_file()
    env = backend["environment"]
    assert env["IB_HOST_SERVICE_URL"] == "http://host.docker.internal:5001"
    assert env["IB_HOST_SERVICE_API_KEY"].startswith("${IBHOST_API_KEY:?")
    assert "host.docker.internal:host-gateway" in backend["extra_hosts"]
    # every COPY source exists in the build context, and the app is the one tested above
    copies = re.findall(r"^COPY (\S+) (\S+)$", dockerfile.read_text(), re.M)
    assert copies and all((context / src).exists() for src, _ in copies)
    assert ("examples/backend/app.py", "/app/app.py") in copies
    assert "clients/python" in dict(copies)
