"""Control sockets: HTTP/1.1 + JSON over Unix-domain sockets.

Servers: stale socket removed, created owner-only (umask 0o177, then 0600),
path length checked. Clients: connect and read timeouts, and every failure
turned into one typed error (``IpcError``) or the peer's ``IbhostError``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from .errors import IbhostError

MAX_SOCKET_PATH = 104  # sun_path is 104 bytes on macOS, 108 on Linux


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


async def serve_unix(app: web.Application, path: str) -> web.AppRunner:
    """Serve ``app`` on a Unix socket at ``path`` (mode 0600)."""
    check_socket_path(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a stale socket from a killed run
    # handler_cancellation: a caller that hangs up cancels its handler (and so the
    # IB requests it still has queued or open)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           handler_cancellation=True)
    await runner.setup()
    old = os.umask(0o177)
    try:
        await web.UnixSite(runner, path).start()
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return runner


async def stop_unix(runner: web.AppRunner, path: str) -> None:
    await runner.cleanup()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class UnixClient:
    """A JSON client for one control socket. Reuses one HTTP session."""

    def __init__(self, path: str, *, connect_timeout: float = 2.0,
                 read_timeout: float = 30.0) -> None:
        self.path = path
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.path),
                timeout=aiohttp.ClientTimeout(sock_connect=self.connect_timeout,
                                              sock_read=self.read_timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @contextlib.asynccontextmanager
    async def _call(self, method: str, url: str, read_timeout: float | None,
                    deadline: float | None = None,
                    **kw: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request with the client's timeouts; transport failures become IpcError.

        ``deadline``: seconds for the whole answer, also sent to the server
        (X-Ibhost-Deadline) so it stops working for a caller that has given up."""
        timeout = None
        if read_timeout is not None or deadline is not None:
            timeout = aiohttp.ClientTimeout(sock_connect=self.connect_timeout,
                                            sock_read=read_timeout, total=deadline)
        if deadline is not None:
            kw["headers"] = {**kw.get("headers", {}), "X-Ibhost-Deadline": f"{deadline:.3f}"}
        try:
            async with self._http().request(method, "http://ibhost" + url, timeout=timeout,
                                            **kw) as resp:
                yield resp
        except TimeoutError as e:
            raise IpcError(self.path, "timed out", timeout=True) from e
        except (aiohttp.ClientError, OSError) as e:
            raise IpcError(self.path, str(e) or type(e).__name__) from e

    async def request_text(self, method: str, url: str, *,
                           read_timeout: float | None = None) -> str:
        """Call ``url`` and return the body as text (for non-JSON answers like /metrics)."""
        async with self._call(method, url, read_timeout) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise IpcError(self.path, f"HTTP {resp.status}")
            return text

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
    ) -> Any:
        """Call ``url``; return the decoded JSON, raise IbhostError for 4xx/5xx."""
        kw: dict[str, Any] = {"headers": headers} if headers else {}
        async with self._call(method, url, read_timeout, deadline, json=json_body,
                              params=params, **kw) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise self._failure(resp.status, raw)
            try:
                return json.loads(raw) if raw else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise IpcError(self.path, f"non-JSON answer ({resp.status})") from None

    def _failure(self, status: int, raw: bytes) -> Exception:
        """What an error answer stands for: the IbhostError its JSON body names."""
        try:
            data = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return IpcError(self.path, f"non-JSON answer ({status})")
        return IbhostError.from_dict(data or {}, status)

    async def request_bytes(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        deadline: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """Call ``url`` and return the answer's bytes as they are (to relay them);
        an error status raises IbhostError as ``request`` does."""
        kw: dict[str, Any] = {"headers": headers} if headers else {}
        async with self._call(method, url, None, deadline, json=json_body, **kw) as resp:
            raw = await resp.read()  # transport failures: _call makes them IpcError
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
        kw: dict[str, Any] = {"headers": headers} if headers else {}
        async with self._call(method, url, None, deadline, json=json_body, **kw) as resp:
            if resp.status >= 400:
                raise self._failure(resp.status, await resp.read())
            buf = b""
            try:  # split lines here: one chunk of bars can exceed the reader's line limit
                async for data in resp.content.iter_any():
                    buf += data
                    *done, buf = buf.split(b"\n")
                    for raw in done:
                        if raw.strip():
                            yield json.loads(raw)
                if buf.strip():
                    yield json.loads(buf)
            except (aiohttp.ClientError, OSError) as e:
                raise IpcError(self.path, str(e) or type(e).__name__) from e
            except TimeoutError as e:
                raise IpcError(self.path, "timed out", timeout=True) from e
