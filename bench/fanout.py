"""The fan-out benchmark's consumers: N WebSocket consumers of one quote stream in
one process of their own (the bench's process holds the direct ib_async client).

Each quote's arrival is the kernel's receive timestamp of the packet that carried it
(SO_TIMESTAMPNS, the wall clock), so the order in which this process gets round to
its sockets does not enter the figures: what is measured is when the gateway's
bytes reached each consumer.

    python fanout.py URL KEY N SECONDS SYMBOL

Prints {"ready": true} once every consumer is subscribed, then one JSON object: per
quote (named by its bid, ask, last, sizes and volume) the arrival times at the
consumers, how long connecting took, and the frames read.
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import struct
import sys
import time
import urllib.parse
from collections import defaultdict

import orjson

QUOTE_KEY = ("bid", "ask", "last", "bidSize", "askSize", "volume")
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((0x80 | opcode,))
    head += bytes((0x80 | n,)) if n < 126 else bytes((0x80 | 126,)) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Consumer:
    def __init__(self, host: str, port: int, key: str, symbol: str) -> None:
        s = self.sock = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall((f"GET /v1/stream/ws HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                   f"Sec-WebSocket-Version: 13\r\nX-API-Key: {key}\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("closed during the handshake")
            buf += chunk
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head.decode(errors="replace"))
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.sendall(masked(1, json.dumps({"op": "subscribe", "quotes": [symbol]}).encode()))
        self.frames: list[tuple[float, bytes]] = []
        self.subscribed = False

    def read(self) -> None:
        data, anc, _, _ = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(16))
        if not data:
            raise ConnectionError("closed")
        t = time.time()
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", raw[:16])
                t = sec + nsec / 1e9
        self.buf += data
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
            if opcode == 9:  # the gateway's ping: answer it
                self.sock.sendall(masked(10, payload))
            elif opcode == 1:
                if not self.subscribed:
                    self.subscribed = True
                else:
                    self.frames.append((t, payload))


def main(url: str, key: str, n: int, seconds: float, symbol: str) -> None:
    u = urllib.parse.urlsplit(url)
    assert u.hostname is not None and u.port is not None
    t0 = time.monotonic()
    consumers = [Consumer(u.hostname, u.port, key, symbol) for _ in range(n)]
    ep = select.epoll()
    by_fd = {}
    for c in consumers:
        c.sock.setblocking(False)
        ep.register(c.sock.fileno(), select.EPOLLIN)
        by_fd[c.sock.fileno()] = c

    def poll(until: float) -> None:
        while (left := until - time.monotonic()) > 0:
            for fd, _ in ep.poll(min(left, 0.5)):
                by_fd[fd].read()

    deadline = time.monotonic() + 120
    while not all(c.subscribed for c in consumers):
        assert time.monotonic() < deadline, "not every consumer was subscribed"
        poll(time.monotonic() + 0.05)
    connect_s = time.monotonic() - t0
    poll(time.monotonic() + 0.6)  # the replayed newest quotes arrive
    for c in consumers:
        c.frames.clear()
    print(json.dumps({"ready": True}), flush=True)
    poll(time.monotonic() + seconds)
    arrivals: dict[str, list[float]] = defaultdict(list)
    frames = 0
    for c in consumers:
        c.sock.close()
        seen: set[str] = set()
        for t, payload in c.frames:
            frames += 1
            data = orjson.loads(payload)
            for ev in data if isinstance(data, list) else [data]:
                if ev.get("type") != "quote":
                    continue
                k = json.dumps([ev.get(f) for f in QUOTE_KEY])
                if k not in seen:  # a quote repeated unchanged: its first arrival
                    seen.add(k)
                    arrivals[k].append(t)
    print(json.dumps({"consumers": n, "connect_s": round(connect_s, 2), "frames": frames,
                      "arrivals": arrivals}), flush=True)


if __name__ == "__main__":
    u_, k_, count, secs, sym = sys.argv[1:6]
    main(u_, k_, int(count), float(secs), sym)
