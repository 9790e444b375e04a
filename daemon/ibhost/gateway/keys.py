"""Typed application keys shared by the gateway's modules."""

from __future__ import annotations

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
