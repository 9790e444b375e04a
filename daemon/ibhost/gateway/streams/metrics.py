"""The gateway's stream figures for /metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram


class StreamMetrics:
    def __init__(self, registry: Any) -> None:
        r = registry
        self.consumers = Gauge("ibhost_stream_consumers", "open stream consumers",
                               ["transport"], registry=r)
        self.streams = Gauge("ibhost_stream_keys", "streams held at the connector for "
                             "this gateway's consumers", registry=r)
        self.events_in = Counter("ibhost_stream_events_in_total", "events received from "
                                 "the connector", ["type"], registry=r)
        self.events_out = Counter("ibhost_stream_events_out_total", "events sent to "
                                  "consumers", ["type"], registry=r)
        self.conflated = Counter("ibhost_stream_conflated_total", "quote and partial-bar "
                                 "events replaced by a newer one before a consumer read "
                                 "them", registry=r)
        self.closed = Counter("ibhost_stream_consumers_closed_total", "consumers closed "
                              "by the gateway", ["reason"], registry=r)
        self.lag = Histogram("ibhost_stream_consumer_lag_events", "events waiting for a "
                             "consumer when it was woken",
                             buckets=(0, 1, 2, 5, 10, 50, 100, 500, 1000), registry=r)
        self.upstream = Gauge("ibhost_stream_channel_up", "1 while the stream channel to "
                              "the connector is open", registry=r)
        for t in ("quote", "bar", "barUpdate", "tick", "pnl", "position", "accountValue",
                  "status", "order"):
            self.events_in.labels(t)
            self.events_out.labels(t)
        for t in ("sse", "websocket"):
            self.consumers.labels(t)
        for reason in ("slow", "limit"):
            self.closed.labels(reason)
