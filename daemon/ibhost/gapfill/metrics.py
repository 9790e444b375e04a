"""The gap-filler's metrics (its own registry, scraped by the gateway's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, generate_latest

from ..metrics import new_registry

ERROR_KINDS = ("corrupt", "io", "connector", "pacing")


class GapfillMetrics:
    def __init__(self) -> None:
        r = self.registry = new_registry()
        self.gaps_found = Counter("ibhost_gapfill_gaps_found_total",
                                  "runs of missing bars found in bar files", registry=r)
        self.gaps_filled = Counter("ibhost_gapfill_gaps_filled_total",
                                   "runs of missing bars IB had data for and that were added",
                                   registry=r)
        self.bars_written = Counter("ibhost_gapfill_bars_written_total",
                                    "bars added to bar files", registry=r)
        self.conflicts = Counter("ibhost_gapfill_conflicts_total",
                                 "bars IB answered differently from the stored ones (kept "
                                 "as stored)", registry=r)
        self.errors = Counter("ibhost_gapfill_errors_total",
                              "files not filled, by kind (corrupt file, I/O, connector, pacing)",
                              ["kind"], registry=r)
        for k in ERROR_KINDS:
            self.errors.labels(k)
        self.scan_seconds = Histogram("ibhost_gapfill_scan_duration_seconds",
                                      "time of one scan cycle",
                                      buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
                                      registry=r)
        self.files = Gauge("ibhost_gapfill_files", "bar files in the data directory",
                           registry=r)
        self.last_scan = Gauge("ibhost_gapfill_last_scan_timestamp_seconds",
                               "when the last scan cycle ended (Unix time)", registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
