"""What every connector.sock route module shares: the application's keys and the
answer helpers (JSON from ``ibhost.models`` or plain values, with a state age)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import models
from ..config import Config
from .asks import Freshness
from .metrics import ConnectorMetrics
from .pacing import Scheduler
from .service import Service
from .session import Session
from .streams.hub import StreamHub

SERVICE_KEY = web.AppKey("service", Service)
SESSION_KEY = web.AppKey("session", Session)
SCHEDULER_KEY = web.AppKey("scheduler", Scheduler)
CONFIG_KEY = web.AppKey("config", Config)
STARTED_KEY = web.AppKey("started", float)
METRICS_KEY = web.AppKey("metrics", ConnectorMetrics)
STREAMS_KEY = web.AppKey("streams", StreamHub)


AGE_HEADER = "X-Ibhost-State-Age"  # seconds since IB last sent what the answer holds


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None
          ) -> web.Response:
    """A JSON answer: models (ibhost.models) and plain values alike."""
    return web.Response(body=models.encode(data), status=status, headers=headers,
                        content_type="application/json")


def aged(data: Any, age: float) -> web.Response:
    """An answer read from the connection's state or a cache, with its age."""
    return reply(data, headers={AGE_HEADER: f"{age:.1f}"})


def max_age_of(q: Any) -> float | None:
    return Freshness.read(q, query=True).maxAge


def asks_ib(q: Any) -> bool:
    """``source=ib``: ask IB rather than read the connection's state."""
    return Freshness.read(q, query=True).source == "ib"
