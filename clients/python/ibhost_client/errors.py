"""The gateway's error answers, as one exception type."""

from __future__ import annotations

import json
from typing import Any


class IBHostError(Exception):
    """An error answer from the gateway (or no answer at all: status 0)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 ib_code: int | None = None, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.ib_code = ib_code
        self.body = body or {}


class CircuitOpenError(IBHostError):
    def __init__(self, retry_in: float) -> None:
        super().__init__(0, "circuit_open", f"the host service is failing; next probe in "
                                            f"{retry_in:.1f}s")
        self.retry_in = retry_in


def _error_from(status: int, text: str) -> IBHostError:
    try:
        data = json.loads(text)
        err = data.get("error", {})
    except (json.JSONDecodeError, AttributeError):
        data, err = {}, {}
    return IBHostError(status, err.get("code", "http_error"), err.get("message", text[:200]),
                       err.get("field"), err.get("ib_code"), data if isinstance(data, dict)
                       else {})


def _health_of(e: IBHostError) -> dict[str, Any]:
    return e.body or {"status": "down", "reason": e.message}
