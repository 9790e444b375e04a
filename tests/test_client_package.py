"""The container client installs and imports without the daemon's dependencies."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "python"
DAEMON_ONLY = ("ib_async", "ib_insync", "numpy", "pandas", "exchange_calendars",
               "supervisor", "prometheus_client", "uvloop")


def test_its_distribution_asks_for_none_of_the_daemons_dependencies() -> None:
    meta = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split("=")[0].split("[")[0].strip().lower().replace("-", "_")
             for d in meta["dependencies"]]
    assert names == ["aiohttp"]
    assert meta["optional-dependencies"]["pandas"] == ["pandas>=2.0"]


def test_importing_it_loads_no_daemon_library() -> None:
    code = ("import sys, ibhost_client\n"
            f"print(sorted(m for m in {DAEMON_ONLY!r} if m in sys.modules))\n"
            "print(sorted(m for m in sys.modules if m == 'ibhost' or "
            "m.startswith('ibhost.')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["[]", "[]"]


def test_the_daemons_ibhost_client_is_the_same_module() -> None:
    import ibhost.client
    import ibhost_client

    for name in ("AsyncIBHostClient", "IBHostClient", "IBHostError", "CircuitBreaker",
                 "_Policy", "bars_frame"):
        assert getattr(ibhost.client, name) is getattr(ibhost_client, name), name


def test_it_builds_a_wheel_with_only_the_client(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: the build leaves nothing in the checkout
    shutil.copytree(CLIENT, src, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                          "--no-build-isolation", "-q", "-w", str(tmp_path), str(src)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    [wheel] = tmp_path.glob("ibhost_client-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ibhost_client/__init__.py" in names
    assert not [n for n in names if n.startswith("ibhost/")]
    meta = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    requires = [line for line in text.splitlines() if line.startswith("Requires-Dist")]
    assert requires[0].startswith("Requires-Dist: aiohttp") and all(
        "extra ==" in r for r in requires[1:])
