"""What every program's metrics share.

No ``_created`` series: client_python adds one per counter and histogram child (a
process start time no dashboard or alert reads, over a thousand lines of /metrics).
``ibhost.cli`` also sets ``PROMETHEUS_DISABLE_CREATED_SERIES`` before any program
imports prometheus_client, so a program that builds its own registry follows too.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, disable_created_metrics


def new_registry(*, auto_describe: bool = False) -> CollectorRegistry:
    """A registry for one program's metrics, with ``_created`` series off (process-wide)."""
    disable_created_metrics()
    return CollectorRegistry(auto_describe=auto_describe)
