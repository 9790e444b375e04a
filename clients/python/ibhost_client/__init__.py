"""Python client for the ibhost gateway, for backends in containers.

Installable on its own (``pip install ./clients/python``, distribution
``ibhost-client``: aiohttp only; ``[pandas]`` for the DataFrame answers), and as
``ibhost.client`` inside the daemon's package.

    from ibhost_client import AsyncIBHostClient    # or: from ibhost.client import ...
    async with AsyncIBHostClient() as ib:          # IB_HOST_SERVICE_URL or localhost:5001
        df = await ib.fetch_historical_data("AAPL", "1h", start, end)

``IBHostClient`` is the same API, synchronous (standard library only).

Failures: 503/504 and connection errors are retried with exponential backoff;
4xx never; an order without an idempotency key never (it could be placed twice).
A circuit breaker fails fast while the host is down and lets one probe through
after ``breaker_reset`` seconds to close again.
"""

from __future__ import annotations

# the private helpers too: ibhost.client offers this module's whole namespace
from .aio import AsyncIBHostClient
from .api import DEFAULT_URL, Api, Call, service_url, use_host_service
from .api import _head_ts as _head_ts
from .api import _hist_body as _hist_body
from .api import _iso as _iso
from .errors import CircuitOpenError, IBHostError
from .errors import _error_from as _error_from
from .errors import _health_of as _health_of
from .frames import Progress, bars_frame, csv_frame
from .frames import _CsvLines as _CsvLines
from .frames import _pandas as _pandas
from .frames import _progress_out as _progress_out
from .frames import _utc_ts as _utc_ts
from .policy import RETRY_STATUSES, CircuitBreaker
from .policy import _Policy as _Policy
from .sse import _Resume as _Resume
from .sse import _Sse as _Sse
from .sse import _stream_params as _stream_params
from .sync import IBHostClient

__all__ = [
    "DEFAULT_URL", "RETRY_STATUSES", "Api", "AsyncIBHostClient", "Call", "CircuitBreaker",
    "CircuitOpenError", "IBHostClient", "IBHostError", "Progress", "bars_frame",
    "csv_frame", "service_url", "use_host_service",
]
