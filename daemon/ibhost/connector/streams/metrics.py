"""The hub's figures for /metrics, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from ..asks import STREAM_KINDS as KINDS
from .live import Channel, LiveSub


class Figures(Protocol):
    """What the collector reads of the hub."""

    subs: dict[str, LiveSub]
    channels: dict[str, Channel]
    updates_in: dict[str, int]
    resubscriptions: dict[str, int]
    refused: int
    journal: Any

    def lines(self) -> dict[str, Any]: ...


class StreamCollector:
    """The hub's figures for /metrics, read at scrape time."""

    def __init__(self, hub: Figures) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        h = self.hub
        lines = h.lines()
        yield GaugeMetricFamily("ibhost_stream_lines_used", "market-data lines held by "
                                "quote streams", value=lines["used"])
        yield GaugeMetricFamily("ibhost_stream_line_budget", "market-data lines quote "
                                "streams may hold", value=lines["budget"])
        subs = GaugeMetricFamily("ibhost_stream_subscriptions", "live subscriptions held "
                                 "at IB", labels=["kind"])
        stale = GaugeMetricFamily("ibhost_stream_stale", "live subscriptions marked "
                                  "stale (no data)", labels=["kind"])
        for kind in KINDS:
            subs.add_metric([kind], sum(1 for x in h.subs.values() if x.kind == kind))
            stale.add_metric([kind], sum(1 for x in h.subs.values()
                                         if x.kind == kind and x.stale is not None))
        yield subs
        yield stale
        yield GaugeMetricFamily("ibhost_stream_channels", "open stream channels (one per "
                                "gateway)", value=len(h.channels))
        upd = CounterMetricFamily("ibhost_stream_updates", "updates received from IB and "
                                  "published", labels=["kind"])
        for kind, n in h.updates_in.items():
            upd.add_metric([kind], n)
        yield upd
        res = CounterMetricFamily("ibhost_stream_resubscriptions", "live subscriptions "
                                  "re-requested", labels=["cause"])
        for cause in ("reconnect", "farm", "silent"):
            res.add_metric([cause], h.resubscriptions.get(cause, 0))
        yield res
        yield CounterMetricFamily("ibhost_stream_refused", "streams refused by the line "
                                  "budget", value=h.refused)
        yield GaugeMetricFamily("ibhost_stream_order_seq", "sequence number of the newest "
                                "order event", value=h.journal.seq)
