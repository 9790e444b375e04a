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

Here: what both sides share (the typed error, header names, the socket path
limit); ``ipc.server`` the servers, ``ipc.client`` the client.
"""

from __future__ import annotations

import os

MAX_SOCKET_PATH = 104  # sun_path is 104 bytes on macOS, 108 on Linux
READ_SIZE = 1 << 16
# Who a request is for, ``caller/id``: set by the gateway on connector.sock, where the
# pacing scheduler shares IB between callers. A caller is ``key-<digest>`` for a valid
# API key, or KEYLESS for every caller without one (one bucket, held to a share).
JOB_HEADER = "X-Ibhost-Job"
KEYLESS = "keyless"


class IpcError(RuntimeError):
    """The peer could not be reached or did not answer in time. ``unreachable``: the
    connect itself failed (no socket, refused): nothing is listening there."""

    def __init__(self, path: str, problem: str, *, timeout: bool = False,
                 unreachable: bool = False) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.timeout = timeout
        self.unreachable = unreachable


def check_socket_path(path: str) -> None:
    if len(os.fsencode(path)) >= MAX_SOCKET_PATH:
        raise ValueError(f"socket path is {len(os.fsencode(path))} bytes, over the "
                         f"{MAX_SOCKET_PATH - 1}-byte limit: {path}")
