"""The scheduler's rule checks and record (a part of ``Scheduler``): how long a
waiting request must still wait and which rule holds it, what a grant spends, and
the hard rules' history, kept across restarts in a two-slot file."""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Protocol

from ..config import PacingConfig
from ..files import TwoSlotFile
from ..ipc import KEYLESS
from .pacewindows import MESSAGE_BURST, Bucket, OpenWindow, PaceKey, _Item, caller_of

# the scheduler's logger: log filters and readers of the log see the same name
log = logging.getLogger("ibhost.connector.pacing")


class _Sched(Protocol):
    """What the rules use of the scheduler they are part of."""

    cfg: PacingConfig
    clock: Callable[[], float]
    wall: Callable[[], float]
    identical_window: float
    burst_window: float
    second: float
    spacing: float
    keyless_window: int
    keyless_messages: int
    open: OpenWindow
    state_path: Path | None
    _memory: TwoSlotFile | None
    _last_grant: float
    _keyed_waiting: bool
    _messages: deque[float]
    _reserved: deque[float]
    _sent_identical: dict[Hashable, float]
    _burst: dict[Hashable, deque[float]]
    _window: Bucket
    _keyless_window: Bucket
    _keyless_sent: Bucket
    _job_served: dict[str, float]

    def _expire(self, now: float) -> None: ...
    def _save(self, now: float) -> None: ...


def _tuple(x: Any) -> Any:
    return tuple(_tuple(i) for i in x) if isinstance(x, list) else x


class PaceRules:
    """The rules' checks and record, and their memory across restarts."""

    def _delay(self: _Sched, item: _Item, now: float) -> tuple[float, str]:
        """Seconds until this request may go (inf: until a slot frees), and the rule
        that holds it. The caller expires old entries first (``_expire(now)``)."""
        key = item.key
        used = len(self._messages) + len(self._reserved)
        if used + item.messages > self.cfg.messages_per_second:
            first = min([q[0] for q in (self._messages, self._reserved) if q], default=now)
            return max(self.second - (now - first), 0.001), "message_rate"
        if used >= MESSAGE_BURST and now - self._last_grant < self.spacing:
            return self.spacing - (now - self._last_grant), "spacing"
        keyless = caller_of(item.job) == KEYLESS
        if keyless and self._keyed_waiting:
            wait = self._keyless_sent.wait(now, item.messages, self.keyless_messages)
            if wait > 0:
                return wait, "share"
        if key is None:
            return 0.0, ""
        if not key.hard:
            return (0.0, "") if self.open.allows(item.small) else (float("inf"), "open")
        sent = self._sent_identical.get(key.identical)
        if sent is not None:
            return self.identical_window - (now - sent), "identical"
        burst = self._burst.get(key.contract)
        if burst:
            while burst and now - burst[0] >= self.burst_window:
                burst.popleft()
            if len(burst) >= self.cfg.burst_max:
                return self.burst_window - (now - burst[0]), "burst"
        wait = self._window.wait(now, key.weight, self.cfg.window_max)
        if wait > 0:  # until enough weight has left the window
            return wait, "window"
        if keyless:
            wait = self._keyless_window.wait(now, key.weight, self.keyless_window)
            if wait > 0:
                return wait, "share"
        return 0.0, ""

    def _record(self: _Sched, item: _Item, now: float) -> None:
        self._reserved.extend([now] * item.messages)
        self._last_grant = now
        self._job_served[item.job] = now
        self._job_served[caller_of(item.job) + "/"] = now  # the caller
        keyless = caller_of(item.job) == KEYLESS
        if keyless:
            self._keyless_sent.add(now, item.messages)
        key = item.key
        if key is None:
            return
        if not key.hard:
            self.open.open += 1
            return
        self._sent_identical[key.identical] = now
        self._burst.setdefault(key.contract, deque()).append(now)
        self._window.add(now, key.weight)
        if keyless:
            self._keyless_window.add(now, key.weight)
        self._save(now)

    def _restamp(self: _Sched, key: PaceKey, granted_at: float, sent_at: float,
                 job: str) -> None:
        if self._sent_identical.get(key.identical) == granted_at:
            self._sent_identical[key.identical] = sent_at
        burst = self._burst.get(key.contract)
        if burst:
            for i in range(len(burst) - 1, -1, -1):
                if burst[i] == granted_at:
                    burst[i] = sent_at
                    break
        self._window.restamp(granted_at, sent_at, key.weight)
        if caller_of(job) == KEYLESS:
            self._keyless_window.restamp(granted_at, sent_at, key.weight)

    # --- memory across restarts --------------------------------------------------------

    def _save(self: _Sched, now: float) -> None:
        """Write the hard-rule history before the request leaves (a kill -9 right
        after still leaves it on disk; two slots written in turn, so one is whole)."""
        if self._memory is None:
            return
        shift = self.wall() - now  # monotonic -> wall clock
        state = {
            "identical": [[k, t + shift] for k, t in self._sent_identical.items()],
            "burst": [[k, [t + shift for t in ts]] for k, ts in self._burst.items() if ts],
            "window": [[t + shift, w] for t, w in self._window.entries],
            "keyless": [[t + shift, w] for t, w in self._keyless_window.entries],
        }
        try:
            if not self._memory.write(json.dumps(state).encode()):
                log.warning("pacing memory too large to save (%d in the window)",
                            len(self._window.entries))
        except (OSError, TypeError, ValueError) as e:
            log.warning("cannot save pacing memory to %s: %s", self.state_path, e)

    def _load(self: _Sched) -> None:
        assert self.state_path is not None and self._memory is not None
        try:
            raw = self._memory.read()
            if raw is None and self.state_path.exists():
                raw = self.state_path.read_bytes()  # plain JSON, as earlier releases wrote
                if not raw.startswith(b"{"):
                    raise ValueError("no whole copy in it")
            if raw is None:
                return
            state = json.loads(raw)
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable pacing memory %s: %s", self.state_path, e)
            return
        shift = self.clock() - self.wall()  # wall clock -> monotonic
        try:
            for k, t in state.get("identical", []):
                self._sent_identical[_tuple(k)] = t + shift
            for k, ts in state.get("burst", []):
                self._burst[_tuple(k)] = deque(t + shift for t in ts)
            for t, w in state.get("window", []):
                self._window.add(t + shift, int(w))
            for t, w in state.get("keyless", []):
                self._keyless_window.add(t + shift, int(w))
        except (TypeError, ValueError) as e:
            log.warning("ignoring malformed pacing memory %s: %s", self.state_path, e)
            self._sent_identical.clear()
            self._burst.clear()
            self._window.clear()
            self._keyless_window.clear()
            return
        self._expire(self.clock())
        log.info("pacing memory restored: %d identical, %d in the 10-minute window",
                 len(self._sent_identical), self._window.used)
