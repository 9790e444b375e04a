"""What the stream modules share: the kinds, a live subscription, a channel."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

LINE_KINDS = ("quote", "rtbars", "ticks")  # each holds a market-data line at IB
REST = "rest"  # the holder of subscriptions made with POST /subscriptions
POLLED = "polled"  # the holder of quotes kept for contracts whose snapshots are polled
CHANNEL_QUEUE = 100_000  # lines a channel may have unsent before it is closed


@dataclass
class LiveSub:
    key: str
    kind: str
    contract: Any
    params: dict[str, Any]
    holders: set[str] = field(default_factory=set)
    handle: Any = None  # the ib_async Ticker, BarDataList or RealTimeBarList
    started: float = field(default_factory=time.monotonic)
    last_update: float = field(default_factory=time.monotonic)
    updates: int = 0
    last_bar: dt.datetime | None = None  # the last complete bar sent
    last_event: dict[str, Any] | None = None
    stale: str | None = None  # why, while stale
    stale_since: float = 0.0
    resubscribed: int = 0
    linger: asyncio.TimerHandle | None = None

    def describe(self) -> dict[str, Any]:
        c = self.contract
        return {"key": self.key, "kind": self.kind, "conId": c.conId, "symbol": c.symbol,
                "secType": c.secType, "localSymbol": c.localSymbol, **self.params,
                "holders": len(self.holders), "updates": self.updates,
                "secondsSinceUpdate": round(time.monotonic() - self.last_update, 3),
                "stale": self.stale, "resubscribed": self.resubscribed,
                "lingering": self.linger is not None}


class Channel:
    """One ``GET /stream`` answer being written."""

    def __init__(self) -> None:
        self.id = "ch-" + uuid.uuid4().hex[:12]
        self.queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue(CHANNEL_QUEUE)
        self.closed: str | None = None
        self.wake = asyncio.Event()

    def put(self, seq: int, line: bytes) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait((seq, line))
        except asyncio.QueueFull:
            self.closed = f"channel too slow: {CHANNEL_QUEUE} lines unsent"
            self.wake.set()


class AccountWide:
    """The "contract" of an account-wide P&L stream."""

    conId = 0
    symbol = ""
    secType = ""
    localSymbol = ""
    exchange = ""


def iso(t: Any) -> str | None:
    if t is None:
        return None
    if isinstance(t, dt.datetime):
        return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(t, dt.date):
        return t.isoformat()
    return str(t)
