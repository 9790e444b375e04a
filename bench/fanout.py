"""The fan-out benchmark's consumers: N WebSocket consumers of one quote stream in
one process of their own (the bench's process holds the direct ib_async client),
each a bare asyncio protocol that notes the wall-clock time a read arrived and
parses nothing until the end, so the consumers' own cost hardly enters the figures.

    python fanout.py URL KEY N SECONDS SYMBOL

Prints {"ready": true} once every consumer is subscribed, then one JSON object:
per quote (named by its bid, ask, last, sizes and volume) the arrival times at the
consumers, how long connecting took, and the frames read.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
import urllib.parse
from collections import defaultdict
from typing import Any

import orjson

QUOTE_KEY = ("bid", "ask", "last", "bidSize", "askSize", "volume")


def masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((0x80 | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    else:
        head += bytes((0x80 | 126,)) + n.to_bytes(2, "big")
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


class Consumer(asyncio.Protocol):
    def __init__(self, host: str, key: str, symbol: str) -> None:
        self.host, self.key, self.symbol = host, key, symbol
        self.buf = b""
        self.upgraded = False
        self.subscribed = asyncio.get_running_loop().create_future()
        self.frames: list[tuple[float, bytes]] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET /v1/stream/ws HTTP/1.1\r\nHost: {self.host}\r\n"
                         f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                         f"X-API-Key: {self.key}\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buf += data
        if not self.upgraded:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self.subscribed.set_exception(RuntimeError(head.decode(errors="replace")))
                return
            self.upgraded = True
            self.buf = rest
            self.transport.write(masked(1, json.dumps(
                {"op": "subscribe", "quotes": [self.symbol]}).encode()))
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, at = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, at = int.from_bytes(self.buf[2:4], "big"), 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, at = int.from_bytes(self.buf[2:10], "big"), 10
            if len(self.buf) < at + n:
                return
            payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
            opcode = b0 & 0x0F
            if opcode == 9:  # ping
                self.transport.write(masked(10, payload))
            elif opcode == 1:
                if not self.subscribed.done():
                    self.subscribed.set_result(None)
                else:
                    self.frames.append((now, payload))


async def main(url: str, key: str, n: int, seconds: float, symbol: str) -> None:
    u = urllib.parse.urlsplit(url)
    loop = asyncio.get_running_loop()
    consumers: list[Consumer] = []
    t0 = time.monotonic()
    for i in range(n):
        _, c = await loop.create_connection(
            lambda: Consumer(u.netloc, key, symbol), u.hostname, u.port)
        consumers.append(c)
        if i % 100 == 99:
            await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*(c.subscribed for c in consumers)), 120)
    connect_s = time.monotonic() - t0
    for c in consumers:
        c.frames.clear()
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.sleep(seconds)
    for c in consumers:
        c.transport.close()
    arrivals: dict[str, list[float]] = defaultdict(list)
    frames = 0
    for c in consumers:
        for t, payload in c.frames:
            frames += 1
            data = orjson.loads(payload)
            for ev in data if isinstance(data, list) else [data]:
                if ev.get("type") == "quote":
                    arrivals[json.dumps([ev.get(k) for k in QUOTE_KEY])].append(t)
    print(json.dumps({"consumers": n, "connect_s": round(connect_s, 2), "frames": frames,
                      "arrivals": arrivals}), flush=True)


if __name__ == "__main__":
    u_, k_, count, secs, sym = sys.argv[1:6]
    asyncio.run(main(u_, k_, int(count), float(secs), sym))
