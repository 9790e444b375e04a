"""Live streams (``GET /v1/stream``): the Server-Sent Events parser, the query, and
the resumption after a reconnect that both clients share."""

from __future__ import annotations

import json
from typing import Any

from .policy import _Policy


class _Sse:
    """Server-Sent Events, line by line: an event dict when one is complete."""

    def __init__(self) -> None:
        self.event, self.data = "message", ""
        self.last_id: int | None = None

    def feed(self, line: str) -> dict[str, Any] | None:
        line = line.rstrip("\r\n")
        if line == "":
            if not self.data:
                return None
            ev: dict[str, Any] = json.loads(self.data)
            self.event, self.data = "message", ""
            return ev
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data += value
        elif name == "id" and value.isdigit():
            self.last_id = int(value)
        return None


def _stream_params(quotes: Any, bars: Any, bar_size: str, orders: bool,
                   **extra: Any) -> dict[str, str]:
    def names(x: Any) -> str:
        return ",".join([x] if isinstance(x, str) else list(x))

    p = {"quotes": names(quotes), "bars": names(bars), "barSize": bar_size,
         "orders": "true" if orders else ""}
    p.update({k: str(v) for k, v in extra.items() if v is not None})
    return {k: v for k, v in p.items() if v}


class _Resume:
    """Reconnects a stream: backoff after a failure, reset once events flow again;
    order events resume after the last sequence number seen."""

    def __init__(self, policy: _Policy, since: int | None) -> None:
        self.policy = policy
        self.since = since
        self.attempt = 0

    def headers(self, api_key: str | None) -> dict[str, str]:
        h = {"Accept": "text/event-stream"}
        if api_key:
            h["X-API-Key"] = api_key
        if self.since is not None:
            h["Last-Event-ID"] = str(self.since)
        return h

    def seen(self, ev: dict[str, Any]) -> None:
        self.attempt = 0
        if ev.get("type") == "order" and isinstance(ev.get("seq"), int):
            self.since = ev["seq"]

    def delay(self) -> float:
        d = self.policy.delay(self.attempt)
        self.attempt += 1
        return d
