"""watchdog.sock: status, wake, health and metrics."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..ipc.server import Handler, Reply, Request, json_reply
from ..metrics import new_registry
from ..validate import opt_str
from .core import CAUSES, Watchdog


class WatchdogCollector(Collector):
    def __init__(self, wd: Watchdog, events: Path) -> None:
        self.wd = wd
        self.events = events

    def collect(self) -> Iterable[Metric]:
        fails = CounterMetricFamily("ibhost_watchdog_probe_failures",
                                    "probes a program did not answer", labels=["program"])
        restarts = CounterMetricFamily("ibhost_watchdog_restarts",
                                       "restarts requested from supervisord",
                                       labels=["program"])
        last_ok = GaugeMetricFamily("ibhost_watchdog_last_ok_timestamp_seconds",
                                    "last answered probe", labels=["program"])
        for w in self.wd.watches:
            name = w.program.split(":")[-1]
            fails.add_metric([name], float(w.failures_total))
            restarts.add_metric([name], float(len(w.restarts)))
            last_ok.add_metric([name], w.last_ok_at or 0.0)
        yield fails
        yield restarts
        yield last_ok
        yield CounterMetricFamily("ibhost_watchdog_wakes", "sleep/wake events seen",
                                  value=float(len(self.wd.wakes)))
        yield GaugeMetricFamily("ibhost_watchdog_maintenance",
                                "1 inside an IB maintenance window",
                                value=1.0 if self.wd.maintenance else 0.0)
        o = self.wd.outage
        yield GaugeMetricFamily("ibhost_watchdog_ib_down_seconds",
                                "how long the IB connection has been down (0 when up)",
                                value=max(0.0, self.wd.wall() - o.since) if o else 0.0)
        yield GaugeMetricFamily("ibhost_watchdog_outage_escalated",
                                "1 while an escalated IB outage lasts",
                                value=1.0 if o and o.escalated_at is not None else 0.0)
        esc = CounterMetricFamily("ibhost_watchdog_outage_escalations",
                                  "IB outages escalated", labels=["cause"])
        for cause in CAUSES:
            esc.add_metric([cause], float(self.wd.escalation_counts[cause]))
        yield esc
        exits = CounterMetricFamily("ibhost_watchdog_process_exits",
                                    "program exits recorded by supervisord's event listener",
                                    labels=["program", "state"])
        counts = read_events(self.events)
        for prog in ("connector", "gateway", "watchdog"):
            for state in ("EXITED", "FATAL"):
                exits.add_metric([prog, state], float(counts.get(f"{prog}:{state}", 0)))
        yield exits


def read_events(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text())
        return {str(k): int(v) for k, v in data.items()}
    except (OSError, ValueError):
        return {}


def routes(wd: Watchdog, events: Path) -> dict[tuple[str, str], Handler]:
    """watchdog.sock's route table."""
    registry = new_registry()
    registry.register(WatchdogCollector(wd, events))

    async def status(request: Request) -> Reply:
        st = wd.status()
        st["processEvents"] = read_events(events)
        return json_reply(st)

    async def health(request: Request) -> Reply:
        return json_reply({"status": "ok"})

    async def wake(request: Request) -> Reply:
        source = opt_str(request.json(), "source", "ibhost ctl wake", max_len=100)
        return json_reply(await wd.wake(source))

    async def metrics(request: Request) -> Reply:
        return Reply(body=generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    return {("GET", "/status"): status, ("GET", "/health"): health,
            ("POST", "/wake"): wake, ("GET", "/metrics"): metrics}
