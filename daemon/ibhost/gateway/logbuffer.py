"""The gateway's own recent log lines, kept in memory for the bridge's ``/diag/logs``.

A bounded handler on the ``ibhost`` logger keeps the last lines the gateway process
wrote (its own, and the connector's when both run in one process, as in tests).
Nothing is written to disk. Lines are redacted when read, not when kept: API keys
always, account ids for a caller without a valid key.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from ..proc import ACCOUNT

KEEP = 1000  # lines kept; /diag/logs answers at most this many
LOGGER = "ibhost"


def _z(t: float) -> str:
    """The bridge's timestamps: naive UTC ISO text with a ``Z``."""
    return dt.datetime.fromtimestamp(t, dt.UTC).replace(tzinfo=None).isoformat() + "Z"


class LogBuffer(logging.Handler):
    """The last ``keep`` records at ``level`` or above, as (time, level, logger, text)."""

    def __init__(self, keep: int = KEEP, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.lines: deque[tuple[float, str, str, str]] = deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must not lose the line or raise here
            text = str(record.msg)
        if record.exc_info and record.exc_info[0] is not None:
            text += f" ({record.exc_info[0].__name__}: {record.exc_info[1]})"
        self.lines.append((record.created, record.levelname, record.name, text))

    def recent(self, limit: int, *, redact: Callable[[str], str],
               accounts: bool) -> list[dict[str, Any]]:
        """The newest ``limit`` lines, oldest first, each through ``redact`` (which
        hides the API keys); account ids become ``DU***`` unless ``accounts``."""
        lines = list(self.lines)[-limit:] if limit > 0 else []
        out = []
        for t, level, name, raw in lines:
            text = redact(raw)
            if not accounts:
                text = ACCOUNT.sub(lambda m: m.group(1) + "***", text)
            out.append({"time": _z(t), "level": level, "logger": name, "message": text})
        return out

    def attach(self) -> None:
        logging.getLogger(LOGGER).addHandler(self)

    def detach(self) -> None:
        logging.getLogger(LOGGER).removeHandler(self)
