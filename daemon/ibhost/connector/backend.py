"""The one import seam between ibhost and its IB client library.

ib_async (default) and ib_insync expose the same names (IB, Contract, Stock,
Order, ExecutionFilter, RequestError, ...); everything else in the connector
goes through ``Backend.lib`` and never imports either library directly.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Any

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
