"""When to try again: retries with backoff for what may pass, and a circuit breaker
that fails fast while the host is down."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from .errors import CircuitOpenError

RETRY_STATUSES = (502, 503, 504)


class CircuitBreaker:
    """closed -> open after ``threshold`` failures in a row -> half-open after ``reset``."""

    def __init__(self, threshold: int = 5, reset: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.reset = reset
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.reset else "open"

    def before(self) -> None:
        st = self.state
        if st == "open" or (st == "half_open" and self._probing):
            assert self.opened_at is not None
            raise CircuitOpenError(max(0.0, self.reset - (self.clock() - self.opened_at)))
        if st == "half_open":
            self._probing = True

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._probing = False

    def failure(self) -> None:
        self.failures += 1
        self._probing = False
        if self.state == "half_open" or self.failures >= self.threshold:
            self.opened_at = self.clock()


class _Policy:
    def __init__(self, retries: int, backoff: float, max_backoff: float,
                 breaker: CircuitBreaker) -> None:
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.breaker = breaker

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * (2 ** attempt))
        return base * (0.5 + random.random() / 2)

    @staticmethod
    def retryable(method: str, path: str, headers: dict[str, str]) -> bool:
        if method == "POST" and path.startswith(("/v1/orders", "/orders", "/order")):
            return "Idempotency-Key" in headers
        return method != "DELETE"
