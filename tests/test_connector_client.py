"""ConnectorClient has one method per connector.sock route, and stays light."""

from __future__ import annotations

import inspect
import subprocess
import sys

from aiohttp import web

from ibhost.connector.api import setup_routes
from ibhost.connector.client import ROUTES, ConnectorClient


def test_one_method_per_route_of_the_connector() -> None:
    app = web.Application()
    setup_routes(app)
    served = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None}
    assert set(ROUTES.values()) == served
    for name in ROUTES:
        assert inspect.iscoroutinefunction(getattr(ConnectorClient, name)), name


def test_importing_it_loads_no_heavy_library() -> None:
    code = ("import sys\nimport ibhost.connector.client\n"
            "print(sorted(m for m in ('aiohttp', 'ib_async', 'ib_insync', 'pandas', 'numpy')"
            " if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
