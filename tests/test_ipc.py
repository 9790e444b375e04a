"""Control sockets: the small route server (watchdog.sock, gapfill.sock) and the
client every program uses (connector.sock too), over real Unix sockets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from ibhost.errors import IbhostError, bad_request
from ibhost.ipc import IpcError
from ibhost.ipc.client import UnixClient
from ibhost.ipc.server import (
    Reply,
    Request,
    RouteServer,
    json_reply,
    serve_routes,
    serve_unix,
    stop_unix,
)


async def echo(request: Request) -> Reply:
    return json_reply({"method": request.method, "query": request.query,
                       "body": request.json()})


async def refuse(request: Request) -> Reply:
    raise bad_request("symbol", "is not a symbol")


async def bug(request: Request) -> Reply:
    raise KeyError("secret-internal-detail")


async def slow(request: Request) -> Reply:
    await asyncio.sleep(float(request.query.get("s", "5")))
    return json_reply({"slept": True})


ROUTES = {("POST", "/echo"): echo, ("GET", "/echo"): echo, ("GET", "/refuse"): refuse,
          ("GET", "/bug"): bug, ("GET", "/slow"): slow}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, RouteServer]]:
    sock = str(tmp_path / "t.sock")
    server = await serve_routes(ROUTES, sock)
    yield sock, server
    await server.stop(sock)


async def raw(sock: str, data: bytes) -> bytes:
    """Send ``data`` on one connection and read until the server closes it."""
    reader, writer = await asyncio.open_unix_connection(sock)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_route_server_answers_and_names_every_problem(
        served: tuple[str, RouteServer]) -> None:
    sock, _ = served
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    c = UnixClient(sock)
    try:
        got = await c.request("POST", "/echo", json_body={"a": [1, "é"]},
                              params={"k": "v w"})
        assert got == {"method": "POST", "query": {"k": "v w"}, "body": {"a": [1, "é"]}}
        assert (await c.request("GET", "/echo"))["body"] == {}
        with pytest.raises(IbhostError) as e:
            await c.request("GET", "/refuse")
        assert e.value.status == 400 and e.value.field == "symbol"
        with pytest.raises(IbhostError) as e:
            await c.request("GET", "/nowhere")
        assert e.value.status == 404 and "/nowhere" in e.value.message
        with pytest.raises(IbhostError) as e:  # a bug: 500, and no detail leaks
            await c.request("GET", "/bug")
        assert e.value.status == 500 and "secret" not in json.dumps(e.value.to_dict())
        with pytest.raises(IbhostError) as e:
            await c.request("POST", "/echo", json_body=[1, 2])
        assert e.value.status == 400 and e.value.field == "body"
        with pytest.raises(IbhostError) as e:
            await c.request("POST", "/echo", json_body={"x": "y" * (1 << 20)})
        assert e.value.status == 413 and e.value.field == "body"
        # the connection that carried the error answers is still good
        assert (await c.request("GET", "/echo", params={"n": 1}))["query"] == {"n": "1"}
    finally:
        await c.close()


async def test_route_server_speaks_http_to_any_client(
        served: tuple[str, RouteServer]) -> None:
    """Wrong methods get 405 with Allow; bad JSON and a request that is not HTTP get
    a 400 JSON body; two requests on one connection get two answers."""
    sock, _ = served
    answer = await raw(sock, b"DELETE /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405") and b"Allow: GET, POST" in head
    assert json.loads(body)["error"]["code"] == "method_not_allowed"
    answer = await raw(sock, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                             b"Connection: close\r\n\r\n{nope")
    assert answer.startswith(b"HTTP/1.1 400")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["field"] == "body"
    answer = await raw(sock, b"\x00\x01 garbage\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    two = await raw(sock, b"GET /echo?i=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /echo?i=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert two.count(b"HTTP/1.1 200") == 2 and b'"i": "2"' in two
    if shutil.which("curl"):  # what an operator types
        curl = await asyncio.create_subprocess_exec(
            "curl", "-s", "--unix-socket", sock, "-d", '{"from": "curl"}',
            "-H", "Content-Type: application/json", "http://x/echo",
            stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(curl.communicate(), 10)
        assert json.loads(out)["body"] == {"from": "curl"}


async def test_client_survives_a_server_restart(tmp_path: Path) -> None:
    """A kept-alive connection whose server went away is not an error: the next call
    connects again."""
    sock = str(tmp_path / "t.sock")
    c = UnixClient(sock)
    try:
        for _ in range(3):
            server = await serve_routes(ROUTES, sock)
            assert (await c.request("GET", "/echo"))["method"] == "GET"
            assert (await c.request("GET", "/echo"))["method"] == "GET"
            await server.stop(sock)
        with pytest.raises(IpcError) as e:
            await c.request("GET", "/echo")
        assert not e.value.timeout
    finally:
        await c.close()


async def test_a_connection_dropped_as_a_call_begins(tmp_path: Path) -> None:
    """A server that closes a kept-alive connection without answering: a GET is sent
    again on a new connection; a POST is not (it may have been acted on) and fails."""
    sock = str(tmp_path / "k.sock")
    seen: list[bytes] = []

    async def conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = True
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            n = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(n)
            seen.append(head.split(b" ")[0])
            if not first:
                writer.close()  # the second request on a connection: dropped unanswered
                return
            first = False
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    server = await asyncio.start_unix_server(conn, sock)
    c = UnixClient(sock)
    try:
        assert await c.request("GET", "/a") == {}
        assert await c.request("GET", "/a") == {}  # dropped, sent again
        assert seen == [b"GET", b"GET", b"GET"]
        with pytest.raises(IpcError):  # the kept-alive connection: dropped, not re-sent
            await c.request("POST", "/b", json_body={})
        assert seen[3:] == [b"POST"]
        assert await c.request("POST", "/b", json_body={}) == {}  # a new connection
        assert seen[3:] == [b"POST", b"POST"]
    finally:
        await c.close()
        server.close()


async def test_client_timeouts(served: tuple[str, RouteServer]) -> None:
    sock, _ = served
    c = UnixClient(sock, read_timeout=0.3)
    try:
        t0 = time.monotonic()
        with pytest.raises(IpcError) as e:
            await c.request("GET", "/slow", params={"s": 5})
        assert e.value.timeout and time.monotonic() - t0 < 2
        t0 = time.monotonic()
        with pytest.raises(IpcError) as e:  # a deadline holds the whole call
            await c.request("GET", "/slow", params={"s": 5}, deadline=0.5)
        assert e.value.timeout and time.monotonic() - t0 < 2
        assert (await c.request("GET", "/slow", params={"s": 0.01}))["slept"] is True
    finally:
        await c.close()


async def test_a_cancelled_call_hangs_up_so_the_server_stops_working(
        tmp_path: Path) -> None:
    """The gateway cancels its connector call when its own caller goes away: the
    connector's handler must be cancelled too (it holds IB requests open)."""
    sock = str(tmp_path / "a.sock")
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hold", hold)
    runner = await serve_unix(app, sock)
    c = UnixClient(sock, read_timeout=60)
    try:
        call = asyncio.ensure_future(c.request("POST", "/hold", json_body={}))
        await asyncio.wait_for(started.wait(), 5)
        call.cancel()
        await asyncio.wait_for(cancelled.wait(), 2)
    finally:
        await c.close()
        await stop_unix(runner, sock)


async def test_lines_arrive_as_they_are_sent(tmp_path: Path) -> None:
    """An NDJSON answer is yielded line by line before the server has finished it, and
    a line longer than one read is whole."""
    sock = str(tmp_path / "a.sock")
    go_on = asyncio.Event()
    big = "x" * 300_000

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        await resp.write(json.dumps({"n": 1, "big": big}).encode() + b"\n")
        await go_on.wait()
        await resp.write(b'{"n": 2}\n{"n": 3}')
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/stream", stream)
    runner = await serve_unix(app, sock)
    c = UnixClient(sock)
    try:
        lines = c.lines("POST", "/stream", json_body={})
        first = await asyncio.wait_for(anext(lines), 5)
        assert first == {"n": 1, "big": big}
        go_on.set()
        assert [x async for x in lines] == [{"n": 2}, {"n": 3}]
        assert (await c.request_bytes("POST", "/stream", json_body={})).count(b"\n") == 2
    finally:
        await c.close()
        await stop_unix(runner, sock)


def test_small_programs_do_not_load_aiohttp() -> None:
    """The watchdog, the gap-filler, the events listener and ctl speak to their sockets
    without aiohttp (about 13 MiB of every process that loads it)."""
    code = ("import sys\nimport ibhost.watchdog.main, ibhost.gapfill.main, "
            "ibhost.watchdog.events, ibhost.ctl\nprint('aiohttp' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


async def test_an_answer_cut_off_is_an_error_not_a_short_body(tmp_path: Path) -> None:
    """A server that dies half way through an answer: the caller gets IpcError, never
    the bytes that arrived as if they were the whole answer."""
    sock = str(tmp_path / "c.sock")

    async def conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\": ")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(conn, sock)
    c = UnixClient(sock)
    try:
        for call in (c.request("GET", "/x"), c.request_bytes("POST", "/x", json_body={})):
            with pytest.raises(IpcError) as e:
                await call
            assert not e.value.timeout
        with pytest.raises(IpcError):
            async for _ in c.lines("POST", "/x", json_body={}):
                pass
    finally:
        await c.close()
        server.close()
