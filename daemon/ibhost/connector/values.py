"""Small helpers every request module shares: the caller's deadline, IB's numbers
and dates (a leaf module, so the request modules can import it at the top)."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import math
from typing import Any

# The caller's deadline (event-loop time), set per request by the control socket:
# nothing waits past it, and what is still open at IB is cancelled.
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline",
                                                                       default=None)


# Who the request is for (``caller/id``, from the gateway's X-Ibhost-Job header): every
# IB request made for it is paced as that caller's.
JOB: contextvars.ContextVar[str] = contextvars.ContextVar("job", default="")


def time_left() -> float | None:
    dl = DEADLINE.get()
    return None if dl is None else dl - asyncio.get_running_loop().time()


def _num(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or f in (-1.0,) or abs(f) > 1e300 else f


def _utc(d: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(d, dt.datetime):
        return d if d.tzinfo else d.replace(tzinfo=dt.UTC)
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)


__all__ = ["DEADLINE", "_num", "_utc", "time_left"]


_libc: Any = None


def release_memory() -> None:
    """Hand freed heap back to the system after a large answer (glibc keeps it
    otherwise, and the connector would stay at its peak for the rest of its life)."""
    global _libc
    if _libc is None:
        try:
            import ctypes

            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim  # noqa: B018  (glibc only)
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        import gc

        gc.collect()
        _libc.malloc_trim(0)
