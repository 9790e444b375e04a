"""One consumer of live streams (an SSE or WebSocket client) and the bytes it is
sent: each event's frame is built once for every consumer on the same wire."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

CONFLATED = frozenset({"quote", "barUpdate", "pnl", "position", "accountValue"})
DIRECT_MAX = 64 * 1024  # bytes unsent in a consumer's socket before it goes on a queue


def ws_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed WebSocket text frame (the same bytes for every
    consumer: it is built once per event)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def sse_chunk(body: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%b\r\n" % (len(body), body) if chunked else body


def sse_event(typ: str, seq: int, line: bytes) -> bytes:
    head = b"id: %d\n" % seq if typ == "order" else b""
    return head + b"event: " + typ.encode() + b"\ndata: " + line + b"\n\n"


def encode(wire: str, typ: str, seq: int, line: bytes) -> bytes:
    if wire == "ws":
        return ws_frame(line)
    return sse_chunk(sse_event(typ, seq, line), wire == "sse")


class Consumer:
    """One SSE or WebSocket client: what it holds and what it has not read yet.

    While it keeps up, events are written straight to its socket, each encoded once
    for all consumers (``Broker._push``); when its socket has ``DIRECT_MAX`` bytes
    unsent, they queue here and its own task writes them as it drains."""

    def __init__(self, caller: str, limit: int, orders: bool = False) -> None:
        self.caller = caller
        self.limit = limit
        self.orders = orders
        self.keys: set[str] = set()
        self.latest: dict[str, tuple[str, bytes]] = {}  # conflated: key -> newest
        self.pending: deque[tuple[str, int, bytes]] = deque()  # (type, seq, line)
        self.wake = asyncio.Event()
        self.closed: str | None = None
        self.conflated = 0
        self.drained = 0  # events handed to the transport
        self.after_seq = -1  # order events at or below this were sent from the journal
        self.created = time.monotonic()
        self.on_slow: Any = None  # called once when closed for being too slow
        self.transport: Any = None  # set once the stream is open: direct writes
        self.wire = ""  # "ws", "sse" (chunked) or "sse-raw"
        self.via = "sse"  # the transport label for metrics
        self.out: list[bytes] = []  # direct writes of the current batch
        self.sending = False  # its own task is writing queued events

    def push(self, typ: str, key: str, seq: int, line: bytes) -> bool:
        """Queue one event; False when the consumer had to be closed (too far behind)."""
        if self.closed:
            return False
        if typ in CONFLATED:
            if key in self.latest:
                self.conflated += 1
            self.latest[key] = (typ, line)
        else:
            if typ == "order" and seq <= self.after_seq:
                return True
            self.pending.append((typ, seq, line))
            if len(self.pending) > self.limit:
                self.close(f"too slow: more than {self.limit} events unread "
                           f"(streams.consumer_queue)")
                if self.on_slow is not None:
                    self.on_slow()
                return False
        self.wake.set()
        return True

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
        self.wake.set()

    def direct(self) -> bool:
        t = self.transport
        return (t is not None and not self.pending and not self.latest and not self.sending
                and not self.closed and not t.is_closing()
                and t.get_write_buffer_size() < DIRECT_MAX)

    def drain(self) -> list[tuple[str, int, bytes]]:
        self.drained += len(self.pending) + len(self.latest)
        out = list(self.pending)
        self.pending.clear()
        if self.latest:
            out += [(typ, 0, line) for typ, line in self.latest.values()]
            self.latest.clear()
        self.wake.clear()
        return out
