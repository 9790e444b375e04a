"""The control-socket client: ``UnixClient`` (HTTP/1.1 through h11, kept-alive
connections, connect and read timeouts, every failure one typed error) and the
NDJSON readers over it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import h11

from ..errors import IbhostError
from . import READ_SIZE, IpcError

IDLE_REUSE = 30.0  # a kept-alive connection idle longer is not reused (servers drop them)
MAX_IDLE = 32  # kept-alive connections per client
MAX_OPEN = 100  # connections in use per client; more calls wait for one (as aiohttp's)


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
            raise IpcError(self.path, f"cannot connect: {e.strerror or e}",
                           unreachable=True) from e
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
