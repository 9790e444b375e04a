"""What the simulator counts: requests, errors sent, pacing violations, id clashes."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    errors_sent: Counter[int] = field(default_factory=Counter)
    violations: list[dict[str, Any]] = field(default_factory=list)
    clashes: list[int] = field(default_factory=list)
    requests_before_ready: int = 0
    connections_total: int = 0
    restarts: int = 0
    historical_served: int = 0
    historical_cancelled: int = 0

    def count_request(self, name: str) -> None:
        self.requests[name] += 1

    def count_error(self, code: int) -> None:
        self.errors_sent[code] += 1

    def violation(self, rule: str, client_id: int, req_id: int) -> None:
        self.violations.append({
            "rule": rule, "clientId": client_id, "reqId": req_id,
            "at": dt.datetime.now(dt.UTC).isoformat(),  # real time, for logs
        })

    def clash(self, client_id: int) -> None:
        self.clashes.append(client_id)

    def as_dict(self) -> dict[str, Any]:
        by_rule: Counter[str] = Counter(v["rule"] for v in self.violations)
        return {
            "requests": dict(self.requests),
            "errors_sent": {str(k): v for k, v in self.errors_sent.items()},
            "violations": list(self.violations),
            "violations_by_rule": dict(by_rule),
            "clashes": list(self.clashes),
            "requests_before_ready": self.requests_before_ready,
            "connections_total": self.connections_total,
            "restarts": self.restarts,
            "historical_served": self.historical_served,
            "historical_cancelled": self.historical_cancelled,
        }
