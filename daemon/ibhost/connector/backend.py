"""The one import seam between ibhost and its IB client library.

ib_async (default) and ib_insync expose the same names (IB, Contract, Stock,
Order, ExecutionFilter, RequestError, ...); everything else in the connector
goes through ``Backend.lib`` and never imports either library directly.
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from . import bars

SUPPORTED = ("ib_async", "ib_insync")


@dataclass(frozen=True)
class Backend:
    name: str
    lib: ModuleType

    def new_ib(self) -> Any:
        ib = self.lib.IB()
        # Errors on a pending request end it with RequestError instead of an
        # empty result (ib_async/ib_insync default: log and return []).
        ib.RaiseRequestErrors = True
        _read_early_head_timestamps(ib.wrapper)
        bars.install(ib, self.lib.util.parseIBDatetime)
        return ib

    def connect_kwargs(self, ib: Any) -> dict[str, Any]:
        """Make sync failures fatal where the library allows it (ib_async 2.x)."""
        params = inspect.signature(ib.connectAsync).parameters
        return {"raiseSyncErrors": True} if "raiseSyncErrors" in params else {}

    @property
    def version(self) -> str:
        return str(getattr(self.lib, "__version__", "?"))


def load(name: str) -> Backend:
    if name not in SUPPORTED:
        raise ValueError(f"backend must be one of {', '.join(SUPPORTED)}")
    return Backend(name, importlib.import_module(name))


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _read_early_head_timestamps(wrapper: Any) -> None:
    """A head timestamp before 1970 (IBM's is 1962) comes as a negative epoch with
    formatDate=2, which the libraries cannot parse (the request failed with a
    ValueError): read it here, hand everything else to the library."""
    original = wrapper.headTimestamp

    def head_timestamp(req_id: int, text: str) -> None:
        t = text.strip()
        if t.startswith("-") and t[1:].isdigit():
            wrapper._endReq(req_id, EPOCH + dt.timedelta(seconds=int(t)))
            return
        original(req_id, text)

    wrapper.headTimestamp = head_timestamp
