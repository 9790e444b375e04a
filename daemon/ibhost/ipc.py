"""Control sockets: HTTP/1.1 + JSON over Unix-domain sockets.

Servers: stale socket removed, created owner-only (umask 0o177, then 0600),
path length checked. The connector and the simulator's control socket serve
aiohttp applications (``serve_unix``); the watchdog and the gap-filler, which
answer a handful of small requests, serve a route table (``serve_routes``).
Clients (``UnixClient``): connect and read timeouts, kept-alive connections,
and every failure turned into one typed error (``IpcError``) or the peer's
``IbhostError``.

The client and the small server speak HTTP/1.1 through h11 on asyncio streams,
so the programs that need nothing else of aiohttp do not load it (it is about
13 MiB of every process that imports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import h11

from .errors import IbhostError, code_for_http_status, too_large

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("ibhost.ipc")

MAX_SOCKET_PATH = 104  # sun_path is 104 bytes on macOS, 108 on Linux
READ_SIZE = 1 << 16
IDLE_REUSE = 30.0  # a kept-alive connection idle longer is not reused (servers drop them)
MAX_IDLE = 32  # kept-alive connections per client
MAX_OPEN = 100  # connections in use per client; more calls wait for one (as aiohttp's)
# Who a request is for, ``caller/id``: set by the gateway on connector.sock, where the
# pacing scheduler shares IB between callers. A caller is ``key-<digest>`` for a valid
# API key, or KEYLESS for every caller without one (one bucket, held to a share).
JOB_HEADER = "X-Ibhost-Job"
KEYLESS = "keyless"


class IpcError(RuntimeError):
    """The peer could not be reached or did not answer in time."""

    def __init__(self, path: str, problem: str, *, timeout: bool = False) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.timeout = timeout


def check_socket_path(path: str) -> None:
    if len(os.fsencode(path)) >= MAX_SOCKET_PATH:
        raise ValueError(f"socket path is {len(os.fsencode(path))} bytes, over the "
                         f"{MAX_SOCKET_PATH - 1}-byte limit: {path}")


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


# --- the small server ------------------------------------------------------------------


@dataclass
class Request:
    """One request to a route table: the whole body has been read."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes

    def json(self, *, required: bool = False) -> dict[str, Any]:
        """The body as a JSON object; a 400 naming the problem otherwise."""
        from .validate import json_object

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


# --- the client ------------------------------------------------------------------------


class _Conn:
    __slots__ = ("h11", "idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0


class Response:
    """An answer being read: the status at once, the body as it comes."""

    def __init__(self, conn: _Conn, head: h11.Response, read: Callable[[], Awaitable[bytes]]
                 ) -> None:
        self.status = head.status_code
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                        for k, v in head.headers}
        self._conn = conn
        self._read = read
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn.h11
        while not self.complete:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                # an early end of the stream: h11 raises RemoteProtocolError (an IpcError)
                conn.receive_data(await self._read())
            elif isinstance(ev, h11.Data):
                yield bytes(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                self.complete = True
            elif isinstance(ev, h11.ConnectionClosed):
                raise ConnectionResetError("the peer closed the connection mid-answer")

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])


async def line_batches(chunks: AsyncIterator[bytes], *, tail: bool
                       ) -> AsyncGenerator[list[bytes]]:
    """NDJSON bytes as they come -> the complete, non-blank lines of each read;
    with ``tail``, a last line the answer ended without a newline too."""
    buf = b""
    async for data in chunks:
        buf += data
        if b"\n" not in data:
            continue
        *done, buf = buf.split(b"\n")
        lines = [raw for raw in done if raw.strip()]
        if lines:
            yield lines
    if tail and buf.strip():
        yield [buf]


class UnixClient:
    """A JSON client for one control socket (or, with ``tcp``, an HTTP port).

    Keeps connections alive between calls; a call that is cancelled or fails
    closes its connection, so the server sees the caller hang up."""

    def __init__(self, path: str, *, connect_timeout: float = 2.0,
                 read_timeout: float = 30.0, tcp: tuple[str, int] | None = None) -> None:
        self.path = path
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.tcp = tcp
        self._host = "ibhost" if tcp is None else f"{tcp[0]}:{tcp[1]}"
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(MAX_OPEN)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for c in idle:
            c.writer.close()
        for c in idle:
            with contextlib.suppress(OSError):
                await c.writer.wait_closed()

    def _take_idle(self) -> _Conn | None:
        now = asyncio.get_running_loop().time()
        while self._idle:
            c = self._idle.pop()
            if (now - c.idle_since < IDLE_REUSE and not c.reader.at_eof()
                    and not c.writer.is_closing()):
                return c
            c.writer.close()
        return None

    def _give_back(self, c: _Conn) -> None:
        if len(self._idle) >= MAX_IDLE:
            c.writer.close()
            return
        c.h11.start_next_cycle()
        c.idle_since = asyncio.get_running_loop().time()
        self._idle.append(c)

    async def _connect(self) -> _Conn:
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.tcp is not None:
                    reader, writer = await asyncio.open_connection(*self.tcp)
                else:
                    reader, writer = await asyncio.open_unix_connection(self.path)
        except TimeoutError as e:
            raise IpcError(self.path, "timed out connecting", timeout=True) from e
        except OSError as e:
            raise IpcError(self.path, f"cannot connect: {e.strerror or e}") from e
        return _Conn(reader, writer)

    def _message(self, c: _Conn, method: str, url: str, params: Mapping[str, Any] | None,
                 json_body: Any, headers: Mapping[str, str] | None,
                 deadline: float | None) -> bytes:
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(
                {k: str(v) for k, v in params.items()})
        body = b"" if json_body is None else json.dumps(json_body).encode()
        hdrs = [("Host", self._host), ("Content-Length", str(len(body)))]
        if json_body is not None:
            hdrs.append(("Content-Type", "application/json"))
        if deadline is not None:
            hdrs.append(("X-Ibhost-Deadline", f"{deadline:.3f}"))
        if headers:
            hdrs.extend(headers.items())
        return (c.h11.send(h11.Request(method=method, target=url, headers=hdrs))
                + c.h11.send(h11.Data(data=body)) + c.h11.send(h11.EndOfMessage()))

    @contextlib.asynccontextmanager
    async def _call(self, method: str, url: str, read_timeout: float | None,
                    deadline: float | None = None, *, json_body: Any = None,
                    params: Mapping[str, Any] | None = None,
                    headers: Mapping[str, str] | None = None) -> AsyncIterator[Response]:
        """One request with the client's timeouts; transport failures become IpcError.

        ``deadline``: seconds for the whole answer, also sent to the server
        (X-Ibhost-Deadline) so it stops working for a caller that has given up;
        with a deadline and no ``read_timeout``, reads wait up to the deadline."""
        loop = asyncio.get_running_loop()
        if read_timeout is None and deadline is None:
            read_timeout = self.read_timeout
        ends = None if deadline is None else loop.time() + deadline

        async def read(c: _Conn) -> bytes:
            wait = read_timeout
            if ends is not None:
                left = ends - loop.time()
                wait = left if wait is None else min(wait, left)
            if wait is not None and wait <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait):
                return await c.reader.read(READ_SIZE)

        conn: _Conn | None = None
        resp: Response | None = None
        try:
            async with asyncio.timeout_at(ends):
                await self._slots.acquire()
        except TimeoutError as e:
            raise IpcError(self.path, "timed out waiting for a connection", timeout=True) from e
        try:
            for attempt in (0, 1):
                c = self._take_idle() if attempt == 0 else None
                reused = c is not None
                if c is None:
                    c = await self._connect()
                conn = c
                got_bytes = False
                try:
                    c.writer.write(self._message(c, method, url, params, json_body, headers,
                                                 deadline))
                    head = None
                    while head is None:
                        ev = c.h11.next_event()
                        if ev is h11.NEED_DATA:
                            data = await read(c)
                            got_bytes = got_bytes or bool(data)
                            c.h11.receive_data(data)
                        elif isinstance(ev, h11.Response):
                            head = ev
                        elif isinstance(ev, h11.ConnectionClosed):
                            raise ConnectionResetError("the peer closed the connection")
                except (OSError, h11.RemoteProtocolError):
                    if reused and not got_bytes and method == "GET":
                        # a kept-alive connection the server closed as this call began;
                        # only a GET is sent again (a POST may have been acted on)
                        c.writer.close()
                        conn = None
                        continue
                    raise
                resp = Response(c, head, functools.partial(read, c))
                break
            assert resp is not None
            yield resp
        except TimeoutError as e:
            raise IpcError(self.path, "timed out", timeout=True) from e
        except (OSError, h11.ProtocolError, EOFError) as e:
            raise IpcError(self.path, str(e) or type(e).__name__) from e
        finally:
            self._slots.release()
            if conn is not None:
                if (resp is not None and resp.complete and conn.h11.our_state is h11.DONE
                        and conn.h11.their_state is h11.DONE):
                    self._give_back(conn)
                else:
                    conn.writer.close()

    async def request_text(self, method: str, url: str, *,
                           read_timeout: float | None = None) -> str:
        """Call ``url`` and return the body as text (for non-JSON answers like /metrics)."""
        async with self._call(method, url, read_timeout) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise IpcError(self.path, f"HTTP {resp.status}")
            return raw.decode("utf-8", "replace")

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        read_timeout: float | None = None,
        deadline: float | None = None,
        headers: dict[str, str] | None = None,
        answer_headers: dict[str, str] | None = None,
    ) -> Any:
        """Call ``url``; return the decoded JSON, raise IbhostError for 4xx/5xx.
        ``answer_headers`` receives the answer's headers (names in lower case)."""
        raw = await self.request_bytes(method, url, json_body=json_body, params=params,
                                       read_timeout=read_timeout, deadline=deadline,
                                       headers=headers, answer_headers=answer_headers)
        try:
            return json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise IpcError(self.path, "non-JSON answer") from None

    async def status(self, method: str, url: str) -> int:
        """Call ``url`` and return only the answer's status (a liveness probe)."""
        async with self._call(method, url, None) as resp:
            await resp.read()
        return resp.status

    def _failure(self, status: int, raw: bytes) -> Exception:
        """What an error answer stands for: the IbhostError its JSON body names."""
        try:
            data = json.loads(raw) if raw else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            return IpcError(self.path, f"non-JSON answer ({status})")
        return IbhostError.from_dict(data, status)

    async def request_bytes(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        read_timeout: float | None = None,
        deadline: float | None = None,
        headers: dict[str, str] | None = None,
        answer_headers: dict[str, str] | None = None,
    ) -> bytes:
        """Call ``url`` and return the answer's bytes as they are (to relay them);
        an error status raises the IbhostError its body names."""
        async with self._call(method, url, read_timeout, deadline, json_body=json_body,
                              params=params, headers=headers) as resp:
            raw = await resp.read()
        if answer_headers is not None:
            answer_headers.update(resp.headers)
        if resp.status >= 400:
            raise self._failure(resp.status, raw)
        return raw

    async def lines(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        deadline: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncGenerator[Any]:
        """Call ``url`` for an NDJSON answer and yield each line decoded, as it comes;
        an error status raises IbhostError before the first line."""
        async with self._call(method, url, None, deadline, json_body=json_body,
                              headers=headers) as resp:
            if resp.status >= 400:
                raise self._failure(resp.status, await resp.read())
            async for batch in line_batches(resp.chunks(), tail=True):
                for raw in batch:
                    yield json.loads(raw)


async def raw_line_batches(client: UnixClient, url: str, *,
                           headers: dict[str, str] | None = None
                           ) -> AsyncGenerator[list[bytes]]:
    """GET ``url`` for a never-ending NDJSON answer (a stream channel) and yield the
    complete lines of each read, undecoded; an error status raises before the first."""
    async with client._call("GET", url, None, None, headers=headers) as resp:
        if resp.status >= 400:
            raise client._failure(resp.status, await resp.read())
        async for batch in line_batches(resp.chunks(), tail=False):
            yield batch
