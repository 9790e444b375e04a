"""Connection hygiene for the gateway's TCP listener: a cap on open connections per
client address, a deadline for a request's headers, and the open-files limit.

aiohttp closes idle keep-alive connections itself (``keepalive_timeout``, also
before a connection's first request) but has neither a header deadline nor a
per-address cap, so 1,000 clients sending headers a byte at a time, or 2,000 idle
sockets, could hold every file descriptor. ``GuardedSite`` listens like
``web.TCPSite`` but wraps each connection's aiohttp ``RequestHandler`` in
``_Guard``, a protocol that admits or refuses the connection when it opens and
closes it when a request's headers are late.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

log = logging.getLogger("ibhost.gateway")


@dataclass(frozen=True)
class Limits:
    header_timeout: float  # seconds from a request's first byte to the end of its headers
    per_client: int  # open connections per client address
    linger: float = 1.0  # seconds a refused connection waits for the client to read
    # refused connections left lingering at once: beyond these a refusal is cut at
    # once, or a flood faster than the linger would hold a descriptor each
    lingering_max: int = 64


def raw_response(status: int, reason: str, error: dict[str, Any],
                 headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A whole HTTP/1.1 answer with the catalogue's error body, for a connection
    refused before aiohttp has a request to answer."""
    body = json.dumps({"error": error}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}", "Connection: close",
            *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ConnectionGuard:
    """Counts open connections per client address; counts what it refuses or closes."""

    def __init__(self, limits: Limits, dropped: Any = None) -> None:
        self.limits = limits
        self.open: Counter[str] = Counter()
        self.lingering = 0  # refused connections waiting for their client to read
        self._dropped = dropped  # a prometheus Counter labelled by reason, or None

    def admit(self, address: str) -> bool:
        if self.open[address] >= self.limits.per_client:
            self.count("client_limit")
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]

    def count(self, reason: str) -> None:
        if self._dropped is not None:
            self._dropped.labels(reason).inc()

    def refusal(self, address: str) -> bytes:
        limit = self.limits.per_client
        return raw_response(503, "Service Unavailable", {
            "code": "overloaded", "message": f"too many open connections from {address} "
            f"(at most {limit}; gateway.max_connections_per_client): close idle ones or "
            "reuse them", "reason": "connection_limit", "limit": limit},
            (("Retry-After", "1"),))

    def late_headers(self) -> bytes:
        t = self.limits.header_timeout
        return raw_response(408, "Request Timeout", {
            "code": "request_timeout", "message": f"the request's headers did not arrive "
            f"within {t:g} s (gateway.header_timeout)", "reason": "header_timeout"})


def _awaits_request(handler: web.RequestHandler) -> bool:
    """Whether aiohttp's handler is waiting for the next request to be parsed. It has
    no public hook for this: ``_waiter`` is the future ``start()`` awaits between
    requests (aiohttp 3.9-3.14); tests/test_connections.py pins the behaviour."""
    waiter = getattr(handler, "_waiter", None)
    return waiter is not None and not waiter.done()


class _Guard(asyncio.Protocol):
    """One connection: admitted and handed to aiohttp's handler, or refused."""

    def __init__(self, guard: ConnectionGuard, server: web.Server) -> None:
        self._guard = guard
        self._server = server
        self._inner: web.RequestHandler | None = None
        self._address: str | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lingers = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport = transport
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._guard.admit(address):
            # answer at once and shut our side, then give the client a moment to read
            # the 503 before the socket goes (closing on unread data would reset it)
            transport.write(self._guard.refusal(address))
            if transport.can_write_eof():
                transport.write_eof()
            if self._guard.lingering >= self._guard.limits.lingering_max:
                transport.abort()  # a flood: its descriptors go now, not in a second
                return
            self._guard.lingering += 1
            self._lingers = True
            self._timer = asyncio.get_running_loop().call_later(
                self._guard.limits.linger, transport.abort)
            return
        self._address = address
        self._inner = self._server()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return  # a refused connection: its request is not read
        self._inner.data_received(data)
        if _awaits_request(self._inner):  # bytes of a request whose headers are not in
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(
                    self._guard.limits.header_timeout, self._headers_late)
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        if self._inner is None or self._transport is None or not _awaits_request(
                self._inner):
            return
        self._guard.count("header_timeout")
        self._transport.write(self._guard.late_headers())
        self._transport.close()

    def eof_received(self) -> bool | None:
        if self._inner is None:
            return False  # the client read the refusal and closed: close now
        self._inner.eof_received()
        return None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lingers:
            self._lingers = False
            self._guard.lingering -= 1
        if self._address is not None:
            self._guard.release(self._address)
            self._address = None
        if self._inner is not None:
            self._inner.connection_lost(exc)
            self._inner = None


class GuardedSite(web.BaseSite):
    """``web.TCPSite`` with every connection behind a ``_Guard``."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int,
                 guard: ConnectionGuard) -> None:
        super().__init__(runner)
        self._host, self._port, self._guard = host, port, guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        sockets = getattr(self._server, "sockets", None)
        return int(sockets[0].getsockname()[1]) if sockets else self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Guard(self._guard, server), self._host, self._port,
            backlog=self._backlog, reuse_address=True)


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (macOS refuses RLIM_INFINITY:
    try a large finite value there). Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in ((hard,) if hard != resource.RLIM_INFINITY else (1 << 20, 1 << 16)):
        if target <= soft and soft != resource.RLIM_INFINITY:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            break
        except (ValueError, OSError):
            continue
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]
