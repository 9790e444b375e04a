"""Typed application and request keys shared by the gateway's modules."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..config import Config
from ..connector.client import ConnectorClient
from ..ipc.client import UnixClient
from .auth import Authenticator
from .health import HealthWatcher
from .idempotency import IdempotencyStore
from .logbuffer import LogBuffer
from .metrics import GatewayMetrics

CONFIG_KEY = web.AppKey("config", Config)
AUTH_KEY = web.AppKey("auth", Authenticator)
CONNECTOR_KEY = web.AppKey("connector", ConnectorClient)
HEALTH_KEY = web.AppKey("health", HealthWatcher)
IDEMPOTENCY_KEY = web.AppKey("idempotency", IdempotencyStore)
LOGS_KEY = web.AppKey("logs", LogBuffer)
METRICS_KEY = web.AppKey("metrics", GatewayMetrics)
STARTED_KEY = web.AppKey("started", float)
WATCHDOG_KEY = web.AppKey("watchdog", UnixClient)
GAPFILL_KEY = web.AppKey("gapfill", UnixClient)


def _request_key(name: str, kind: type) -> Any:
    """A typed request key (aiohttp's RequestKey, from 3.14: no NotAppKeyWarning);
    the plain name with an older aiohttp."""
    key_type = getattr(web, "RequestKey", None)
    return key_type(name, kind) if key_type is not None else name


CALLER_RKEY = _request_key("caller", str)  # key-<digest> or KEYLESS, worked out once
REQUEST_ID_RKEY = _request_key("request_id", str)
AGE_RKEY = _request_key("state_age", float)  # the oldest answer read from state or cache
