"""Small helpers every request module shares: the caller's deadline, IB's numbers
and dates (a leaf module, so the request modules can import it at the top)."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import math
import sys
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


# IB's "no value" on the wire for a double (Double.MAX_VALUE; ib_async.util.UNSET_DOUBLE,
# pinned by tests/test_ib_internals.py): not imported, so that this module stays a leaf.
UNSET_DOUBLE = sys.float_info.max

# The price ib_async writes into a ticker's bid, ask or last when IB sends an empty
# side (price -1 with size 0, TWS API "Tick Types"): ``IBDefaults.emptyPrice``.
EMPTY_PRICE = -1.0

# What IB's own decoder (EDecoder.processTickOptionComputationMsg) reads as "not
# computed" in an option computation; ib_async hands these values on as they came.
GREEK_UNSET = {"impliedVol": -1.0, "delta": -2.0, "optPrice": -1.0, "pvDividend": -1.0,
               "gamma": -2.0, "vega": -2.0, "theta": -2.0, "undPrice": -1.0}


def _num(x: Any) -> float | None:
    """IB's number as a float, or None where it is unset: nan (the library's value for
    a field IB has not sent) and UNSET_DOUBLE (or an infinity). Every other value,
    -1.0 included, is a value: a realized P&L of -1.00 is a loss of one dollar."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or abs(f) >= UNSET_DOUBLE else f


def _quote(x: Any) -> float | None:
    """A ticker's bid, ask or last: ``_num``, and None for the library's empty price."""
    f = _num(x)
    return None if f == EMPTY_PRICE else f


def _greek(name: str, x: Any) -> float | None:
    """One field of an option computation: ``_num``, and None for IB's "not computed"."""
    f = _num(x)
    return None if f is None or f == GREEK_UNSET.get(name) else f


def _utc(d: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(d, dt.datetime):
        return d if d.tzinfo else d.replace(tzinfo=dt.UTC)
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)


__all__ = ["DEADLINE", "EMPTY_PRICE", "UNSET_DOUBLE", "_greek", "_num", "_quote", "_utc",
           "time_left"]


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
