"""The last gate before the socket: every message to IB leaves through ``Wire``.

IB allows 50 messages in any second and counts them as they arrive. The scheduler
keeps the flow near 41 a second on average, but some messages are not its to time:
cancels follow their requests' answers, and one read can carry many answers, so a
dozen cancels may be written in one go. Written together, they arrive together; and
a pause on the way (the gateway's, or a reader's) lands them in the next second
beside the messages sent a full second after them: error 100, connection dropped.

``Wire`` holds messages to ``limit`` in any second by the time they leave and,
once the last second holds ``burst`` of them, spaces the rest at least ``gap``
apart; a message that may not leave yet waits, in order, behind the ones before it.
From a quiet second the first ``burst`` leave back to back, as the scheduler grants
them (``MESSAGE_BURST``): ten callers asking at once are not held 12 ms apart
each (108 ms for the tenth), and a second holding them stays far under IB's 50
however they are bunched on the way. Queued messages of a connection that is gone
are dropped (``reset``): they belong to its request ids.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from .pacewindows import MESSAGE_BURST

LIMIT = 44  # in any second: six in hand under IB's 50, for a pause that bunches arrivals
GAP = 0.012  # seconds between two messages at least once a second holds BURST
BURST = MESSAGE_BURST  # messages in a second that may leave back to back


class Wire:
    def __init__(self, send: Callable[[bytes], None], note: Callable[[], None], *,
                 limit: int = LIMIT, gap: float = GAP, burst: int = BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._send = send
        self._note = note
        self.limit = limit
        self.gap = gap
        self.burst = burst
        self.clock = clock
        self._sent: deque[float] = deque()
        self._queue: deque[bytes] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self.delayed = 0  # messages that had to wait (for /metrics and tests)

    def __call__(self, msg: bytes) -> None:
        if self._queue or self._wait() > 0:
            self._queue.append(msg)
            self.delayed += 1
            self._arm()
            return
        self._out(msg)

    def _wait(self) -> float:
        now = self.clock()
        sent = self._sent
        while sent and now - sent[0] >= 1.0:
            sent.popleft()
        wait = 0.0
        if len(sent) >= self.limit:
            wait = sent[0] + 1.0 - now
        if len(sent) >= self.burst:
            wait = max(wait, sent[-1] + self.gap - now)
        return wait

    def _out(self, msg: bytes) -> None:
        self._sent.append(self.clock())
        self._note()
        self._send(msg)

    def _arm(self) -> None:
        if self._timer is None:
            delay = max(self._wait(), 0.0)
            self._timer = asyncio.get_running_loop().call_later(delay, self._drain)

    def _drain(self) -> None:
        self._timer = None
        while self._queue:
            if self._wait() > 0:
                self._arm()
                return
            self._out(self._queue.popleft())

    @property
    def queued(self) -> int:
        return len(self._queue)

    def reset(self) -> None:
        """The connection is gone: what waits belongs to it."""
        self._queue.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
