"""The connector's Prometheus metrics, served as text on connector.sock ``/metrics``.

The gateway scrapes this over the socket and serves it with its own metrics on
one ``/metrics`` (each process keeps its own registry: no multiprocess mode, no
shared directory to wipe). State and counters are read from the session's
diagnostics at scrape time by a collector; latencies are real histograms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .pacing import Scheduler
from .session import Session, State

KNOWN_IB_CODES = (100, 162, 200, 321, 322, 326, 354, 502, 504, 1100, 1101, 1102, 1300,
                  2103, 2104, 2105, 2106, 2107, 2108, 2110, 2157, 2158, 10089, 10167, 10197)
DISCONNECT_REASONS = ("gateway_closed", "heartbeat", "port_reset", "requested", "stopping",
                      "other")
PACING_RULES = ("identical", "burst", "window", "message_rate", "spacing", "share")


def disconnect_kind(reason: str | None) -> str:
    r = (reason or "").lower()
    if r.startswith("heartbeat"):
        return "heartbeat"
    if r.startswith("1300"):
        return "port_reset"
    if "closed by the gateway" in r:
        return "gateway_closed"
    if r == "stopping" or r == "stopped":
        return "stopping"
    if r:
        return "requested"
    return "other"


class SessionCollector(Collector):
    def __init__(self, session: Session, scheduler: Scheduler) -> None:
        self.session = session
        self.scheduler = scheduler
        self.disconnects: dict[str, int] = dict.fromkeys(DISCONNECT_REASONS, 0)
        session.listeners.append(self._on_state)

    def _on_state(self, old: State, new: State, reason: str) -> None:
        if new == State.DOWN and old in (State.READY, State.DEGRADED, State.SYNCHRONIZING):
            self.disconnects[disconnect_kind(reason)] += 1

    def collect(self) -> Iterable[Metric]:
        d = self.session.diag
        st = GaugeMetricFamily("ibhost_connector_state",
                               "1 for the connection's current state", labels=["state"])
        for s in State:
            st.add_metric([s.value], 1.0 if d.state == s.value else 0.0)
        yield st
        yield GaugeMetricFamily("ibhost_connector_up",
                                "1 when the IB connection is usable (ready or degraded)",
                                value=1.0 if self.session.usable else 0.0)
        yield GaugeMetricFamily("ibhost_connector_state_since_timestamp_seconds",
                                "when the current state began", value=d.since or 0.0)
        dc = CounterMetricFamily("ibhost_connector_disconnects",
                                 "connections lost, by kind of reason", labels=["reason"])
        for k, v in self.disconnects.items():
            dc.add_metric([k], float(v))
        yield dc
        codes = CounterMetricFamily("ibhost_connector_ib_codes",
                                    "IB error/notice codes received", labels=["code"])
        seen = dict.fromkeys(KNOWN_IB_CODES, 0) | dict(d.ibCodes)
        for code, n in sorted(seen.items()):
            codes.add_metric([str(code)], float(n))
        yield codes
        yield GaugeMetricFamily("ibhost_connector_heartbeat_last_success_timestamp_seconds",
                                "last answered heartbeat (0 = none yet)",
                                value=d.lastHeartbeatAt or 0.0)
        yield CounterMetricFamily("ibhost_connector_heartbeat_failures",
                                  "heartbeats not answered in time",
                                  value=float(d.heartbeatFailures))
        yield CounterMetricFamily("ibhost_connector_reconnect_attempts",
                                  "connection attempts (one per client id tried)",
                                  value=float(d.reconnectAttempts))
        yield CounterMetricFamily("ibhost_connector_reconnect_failures",
                                  "connection attempts that failed",
                                  value=float(d.reconnectFailures))
        yield CounterMetricFamily("ibhost_connector_client_id_clashes",
                                  "client ids found in use (IB 326)",
                                  value=float(d.clientIdClashes))
        yield GaugeMetricFamily("ibhost_connector_client_id", "client id in use (-1 = none)",
                                value=float(d.clientId if d.clientId is not None and
                                            self.session.usable else -1))
        yield GaugeMetricFamily("ibhost_connector_competing_session",
                                "1 after IB 10197 (market data taken by another session)",
                                value=1.0 if d.competingSession else 0.0)
        farms = GaugeMetricFamily("ibhost_connector_farm_ok", "1 if the data farm is OK",
                                  labels=["farm"])
        for farm, state in d.farms.items():
            farms.add_metric([farm], 1.0 if state == "ok" else 0.0)
        yield farms
        sched = self.scheduler
        yield GaugeMetricFamily("ibhost_connector_pacing_queue_depth",
                                "requests waiting for the pacing scheduler",
                                value=float(sched.depth))
        yield GaugeMetricFamily("ibhost_connector_pacing_window_used",
                                "historical requests counted in the rolling 10-minute window",
                                value=float(sched.window_used()))
        delayed = CounterMetricFamily(
            "ibhost_connector_pacing_delayed",
            "requests held back by a pacing rule (violations avoided)", labels=["rule"])
        for rule in PACING_RULES:
            delayed.add_metric([rule], float(sched.stats.delayed.get(rule, 0)))
        yield delayed
        yield CounterMetricFamily("ibhost_connector_pacing_cache_hits",
                                  "identical historical requests answered from the cache",
                                  value=float(sched.stats.cache_hits))
        yield CounterMetricFamily("ibhost_connector_pacing_coalesced",
                                  "concurrent identical requests merged into one",
                                  value=float(sched.stats.coalesced))


class ConnectorMetrics:
    def __init__(self, session: Session, scheduler: Scheduler) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(SessionCollector(session, scheduler))
        self.pacing_wait = Histogram(
            "ibhost_connector_pacing_wait_seconds", "time a request waited for pacing",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 15, 60, 300, 600),
            registry=self.registry)
        self.request_seconds = Histogram(
            "ibhost_connector_request_duration_seconds",
            "connector.sock request latency", ["route", "status"],
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry)
        scheduler.on_grant = self.pacing_wait.observe

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


_ID = re.compile(r"/\d+$")


def route_label(path: str) -> str:
    """Collapse ids so labels stay bounded (/orders/17 -> /orders/{id})."""
    return _ID.sub("/{id}", path)
