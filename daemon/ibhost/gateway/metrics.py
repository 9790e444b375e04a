"""The gateway's metrics, and the one /metrics for the whole tree.

Design: every program keeps its own prometheus_client registry and serves it on
its control socket; the gateway scrapes those over the sockets at /metrics time
and appends them to its own. That keeps custom collectors (the connector reads
its live state at scrape time), needs no shared multiprocess directory, and a
program that is down shows as ``ibhost_up{program="..."} 0``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Gauge, Histogram, generate_latest

from ..metrics import new_registry

GUARDS = ("trading_disabled", "sec_type", "symbol_allowlist", "market_order_on_option",
          "max_quantity", "max_notional", "api_key")
AUTH_FAILURES = ("missing", "invalid", "no_key_configured")
HEALTH = ("ok", "degraded", "down", "busy", "maintenance")
STORE_OPS = ("read", "write")
# per-route series of the order and account routes (the gateway's and the connector's):
# their counts are the account's trading activity, shown only to a caller with a key
TRADING_ROUTE = re.compile(
    rb'route="(?:/v1)?/(?:orders?|executions|positions|portfolio|account|pnl)[^"]*"')


def without_trading_routes(text: bytes) -> bytes:
    """The exposition less the samples labelled with an order or account route."""
    return b"".join(line for line in text.splitlines(keepends=True)
                    if not TRADING_ROUTE.search(line))

DROPS = ("client_limit", "header_timeout")


class GatewayMetrics:
    def __init__(self, routes: list[tuple[str, str]],
                 programs: dict[str, Callable[[float], Awaitable[str]]]) -> None:
        """``programs``: name -> a scrape of its /metrics, given a timeout."""
        self.programs = programs
        self.requests_total = 0  # plain counts for /health/detailed
        self.errors_total = 0
        r = self.registry = new_registry()
        self.request_seconds = Histogram(
            "ibhost_gateway_request_duration_seconds", "HTTP request latency",
            ["route", "method", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r)
        for method, route in routes:
            self.request_seconds.labels(route, method, "200")
        self.auth_failures = Counter("ibhost_gateway_auth_failures_total",
                                     "requests refused for a missing or wrong API key",
                                     ["reason"], registry=r)
        for reason in AUTH_FAILURES:
            self.auth_failures.labels(reason)
        self.guard_rejections = Counter("ibhost_gateway_order_guard_rejections_total",
                                        "orders refused by a trading guard", ["guard"],
                                        registry=r)
        for g in GUARDS:
            self.guard_rejections.labels(g)
        self.idempotent_replays = Counter(
            "ibhost_gateway_idempotent_replays_total",
            "order retries answered from the idempotency store", registry=r)
        self.idempotency_store_errors = Counter(
            "ibhost_gateway_idempotency_store_errors_total",
            "failed reads or writes of the idempotency store", ["op"], registry=r)
        for op in STORE_OPS:
            self.idempotency_store_errors.labels(op)
        self.health = Gauge("ibhost_gateway_connector_health",
                            "1 for the connector health the gateway sees", ["status"],
                            registry=r)
        for h in HEALTH:
            self.health.labels(h)
        self.up = Gauge("ibhost_up", "1 if the program answered the metrics scrape",
                        ["program"], registry=r)
        self.up.labels("gateway").set(1)
        for name in programs:
            self.up.labels(name)
        self.scrape_errors = Counter("ibhost_gateway_scrape_errors_total",
                                     "failed scrapes of a program's metrics", ["program"],
                                     registry=r)
        for name in programs:
            self.scrape_errors.labels(name)

        self.connections_dropped = Counter(
            "ibhost_gateway_connections_dropped_total",
            "connections refused over the per-client cap or closed for late headers",
            ["reason"], registry=r)
        for reason in DROPS:
            self.connections_dropped.labels(reason)

    def set_health(self, status: str) -> None:
        for h in HEALTH:
            self.health.labels(h).set(1 if h == status else 0)

    async def exposition(self, timeout: float = 1.0) -> bytes:
        async def scrape(name: str, metrics: Callable[[float], Awaitable[str]]) -> bytes:
            try:
                text = await asyncio.wait_for(metrics(timeout), timeout)
                self.up.labels(name).set(1)
                return text.encode()
            except Exception:
                self.up.labels(name).set(0)
                self.scrape_errors.labels(name).inc()
                return b""

        parts = await asyncio.gather(*(scrape(n, c) for n, c in self.programs.items()))
        return generate_latest(self.registry) + b"".join(parts)

