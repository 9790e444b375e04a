"""Control-socket servers: the aiohttp applications' (``serve_unix``) and the small
h11 one for a route table (``serve_routes``), each on an owner-only Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import h11

from ..errors import IbhostError, code_for_http_status, too_large
from . import READ_SIZE, check_socket_path

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("ibhost.ipc")


def _remove_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def _owner_only_socket(path: str) -> Any:
    check_socket_path(path)
    _remove_socket(path)  # a stale socket from a killed run
    old = os.umask(0o177)
    try:
        yield
    finally:
        os.umask(old)
    os.chmod(path, 0o600)


async def serve_unix(app: web.Application, path: str) -> web.AppRunner:
    """Serve the aiohttp ``app`` on a Unix socket at ``path`` (mode 0600)."""
    from aiohttp import web

    # handler_cancellation: a caller that hangs up cancels its handler (and so the
    # IB requests it still has queued or open)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           handler_cancellation=True)
    await runner.setup()
    with _owner_only_socket(path):
        await web.UnixSite(runner, path).start()
    return runner


async def stop_unix(runner: web.AppRunner, path: str) -> None:
    await runner.cleanup()
    _remove_socket(path)


@dataclass
class Request:
    """One request to a route table: the whole body has been read."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes

    def json(self, *, required: bool = False) -> dict[str, Any]:
        """The body as a JSON object; a 400 naming the problem otherwise."""
        from ..validate import json_object

        return json_object(self.body, required=required)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(data).encode())


def error_reply(err: IbhostError) -> Reply:
    return json_reply(err.to_dict(), err.status)


Handler = Callable[[Request], Awaitable[Reply]]


class RouteServer:
    """HTTP/1.1 on a Unix socket for a table of ``(method, path) -> handler``.

    Answers JSON errors itself: 404 for an unknown path, 405 (with ``Allow``) for a
    known path and another method, 413 past ``max_body`` bytes, 400 for a request
    that is not HTTP, an ``IbhostError`` as its status and body, 500 for a bug."""

    def __init__(self, routes: Mapping[tuple[str, str], Handler], *,
                 max_body: int = 1 << 20, idle_timeout: float = 75.0,
                 request_timeout: float = 30.0) -> None:
        self.routes = dict(routes)
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self, path: str) -> None:
        with _owner_only_socket(path):
            self._server = await asyncio.start_unix_server(self._accept, path)

    async def stop(self, path: str) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._conns):
            t.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        _remove_socket(path)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._connection(reader, writer))
        self._conns.add(task)
        task.add_done_callback(self._conns.discard)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                reply, req = await self._one(conn, reader, writer)
                if req is not None:
                    reply = await self._dispatch(req)
                if reply is None:
                    return
                body = reply.body
                headers = [("Content-Type", reply.content_type),
                           ("Content-Length", str(len(body))),
                           *reply.headers.items()]
                if req is None:
                    headers.append(("Connection", "close"))
                writer.write(conn.send(h11.Response(status_code=reply.status, headers=headers))
                             + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (OSError, h11.LocalProtocolError):
            pass
        finally:
            writer.close()

    async def _one(self, conn: h11.Connection, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> tuple[Reply | None, Request | None]:
        """Read one request: (None, request), (an error reply, None) or (None, None)
        when the peer is gone or idle."""
        head: h11.Request | None = None
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    wait = self.idle_timeout if head is None else self.request_timeout
                    async with asyncio.timeout(wait):
                        data = await reader.read(READ_SIZE)
                    conn.receive_data(data)
                    if not data and conn.their_state is h11.IDLE:
                        return None, None
                elif isinstance(ev, h11.Request):
                    head = ev
                    if conn.they_are_waiting_for_100_continue:
                        writer.write(conn.send(h11.InformationalResponse(
                            status_code=100, headers=[])))
                    declared = dict(ev.headers).get(b"content-length")
                    if declared is not None and int(declared) > self.max_body:
                        return self._too_large(), None
                elif isinstance(ev, h11.Data):
                    size += len(ev.data)
                    if size > self.max_body:
                        return self._too_large(), None
                    chunks.append(bytes(ev.data))
                elif isinstance(ev, h11.EndOfMessage):
                    break
                elif isinstance(ev, h11.ConnectionClosed):
                    return None, None
        except TimeoutError:
            return None, None
        except h11.RemoteProtocolError as e:
            if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
                return None, None
            return error_reply(IbhostError("bad_request", f"not HTTP/1.1: {e}")), None
        assert head is not None
        target = head.target.decode("ascii", "replace")
        path, _, query = target.partition("?")
        return None, Request(
            method=head.method.decode("ascii", "replace"),
            path=urllib.parse.unquote(path),
            query=dict(urllib.parse.parse_qsl(query, keep_blank_values=True)),
            body=b"".join(chunks))

    def _too_large(self) -> Reply:
        return error_reply(too_large(self.max_body))

    async def _dispatch(self, req: Request) -> Reply:
        handler = self.routes.get((req.method, req.path))
        if handler is None:
            allowed = sorted(m for m, p in self.routes if p == req.path)
            if not allowed:
                return error_reply(IbhostError("not_found", f"no route {req.path}"))
            err = IbhostError(code_for_http_status(405),
                              f"{req.method} not allowed; use {', '.join(allowed)}")
            reply = json_reply(err.to_dict(), 405)
            reply.headers["Allow"] = ", ".join(allowed)
            return reply
        try:
            return await handler(req)
        except IbhostError as e:
            return error_reply(e)
        except Exception:
            log.exception("%s %s failed", req.method, req.path)
            return error_reply(IbhostError("internal", "unexpected internal error"))


async def serve_routes(routes: Mapping[tuple[str, str], Handler], path: str,
                       **kw: Any) -> RouteServer:
    """Serve a route table on a Unix socket at ``path`` (mode 0600)."""
    server = RouteServer(routes, **kw)
    await server.start(path)
    return server
