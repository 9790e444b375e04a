"""One client connection: handshake, ordered request processing, replies.

Requests are processed strictly in arrival order by one worker per connection;
a frozen simulator parks the worker (replies resume on thaw, as after a lid opens).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from .clientstate import SessionState
from .env import Gateway
from .messages import error as error_message
from .pacing import RATE_TEXT, MessageRate
from .protocol import (
    HEADER,
    MAX_SERVER_VERSION,
    MIN_SERVER_VERSION,
    FrameReader,
    In,
    Out,
    frame,
    frame_raw,
    parse_version_range,
)
from .table import HandlerEntry

log = logging.getLogger("ibhost.sim.session")


class Host(Gateway, Protocol):
    """What a connection needs of the simulator beyond what its handlers use."""

    clock: Callable[[], float]
    sessions: set[Session]
    slow_ms: float
    ready_delay: float
    max_clients: int

    @property
    def frozen(self) -> bool: ...

    def farm_notices(self) -> list[tuple[int, str]]: ...


class Session(asyncio.Protocol):
    def __init__(self, sim: Host, handlers: Mapping[int, HandlerEntry]) -> None:
        self.sim = sim
        self.handlers = handlers
        self.st = SessionState()
        self.transport: asyncio.Transport | None = None
        self.reader = FrameReader()
        self.phase = "prefix"  # prefix -> version -> start -> api
        self.queue: asyncio.Queue[tuple[float, list[str]]] = asyncio.Queue()
        self.arrived = 0.0  # arrival time (sim.clock) of the message being handled
        self.worker: asyncio.Task[None] | None = None
        self.rate = MessageRate(clock=sim.clock)
        self.closed = False
        self.peer = ""
        self.ready_event = asyncio.Event()

    # --- transport callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they share its API
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.sim.sessions.add(self)
        self.worker = asyncio.get_running_loop().create_task(self._work())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.sim.sessions.discard(self)
        if self.worker:
            self.worker.cancel()
        if self.st.client_id >= 0:
            log.info("client %s disconnected", self.st.client_id)

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.append(data)
            if self.phase == "prefix":
                raw = self.reader.take_raw(len(HEADER))
                if raw is None:
                    return
                if raw != HEADER:
                    log.warning("%s: bad API prefix %r", self.peer, raw)
                    self.close()
                    return
                self.phase = "version"
            now = self.sim.clock()
            for fields in self.reader.feed(b""):
                # Rates are judged on arrival, as the gateway does, not when the
                # (possibly busy) worker gets to the message.
                if self.phase == "api" and self._over_rate():
                    return
                self.queue.put_nowait((now, fields))
        except ValueError as e:
            log.warning("%s: %s", self.peer, e)
            self.close()

    # --- output -------------------------------------------------------------------

    def send(self, fields: list[Any]) -> None:
        if self.closed or self.transport is None or self.sim.frozen:
            return
        self.transport.write(frame(fields))
        if fields and fields[0] == Out.ERR_MSG:
            self.sim.stats.count_error(int(fields[3]))

    def error(self, req_id: int, code: int, text: str) -> None:
        self.send(error_message(self.st.version, req_id, code, text))

    def close(self) -> None:
        for task in list(self.st.open_hist.values()):
            task.cancel()
        self.st.open_hist.clear()
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    # --- processing ---------------------------------------------------------------

    async def _work(self) -> None:
        try:
            while not self.closed:
                self.arrived, fields = await self.queue.get()
                await self.sim.unfrozen()
                if self.sim.slow_ms:
                    await asyncio.sleep(self.sim.slow_ms / 1000)
                if self.closed:
                    return
                await self._dispatch(fields)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("%s: session failed", self.peer)
            self.close()

    async def _dispatch(self, fields: list[str]) -> None:
        if self.phase == "version":
            await self._handshake(fields)
            return
        if not fields or not fields[0].lstrip("-").isdigit():
            log.warning("%s: unparsable message %r", self.peer, fields[:3])
            return
        msg_id = int(fields[0])
        if self.phase == "start":
            if msg_id != In.START_API:
                log.warning("%s: message %s before startApi", self.peer, msg_id)
                return
            await self._start_api(fields)
            return
        if not self.st.ready:
            self.sim.stats.requests_before_ready += 1
            await self.ready_event.wait()
        handler = self.handlers.get(msg_id)
        self.sim.stats.count_request(handler.name if handler else f"unknown_{msg_id}")
        if handler is None:
            log.info("%s: unsupported message id %s ignored", self.peer, msg_id)
            return
        try:
            await handler.fn(self.sim, self, fields)
        except Exception as e:  # no input drops the connection: IB answers 321
            if isinstance(e, ValueError | IndexError):
                log.warning("%s: malformed %s: %s", self.peer, handler.name, e)
            else:
                log.exception("%s: %s failed", self.peer, handler.name)
            pos = handler.req_pos
            req_id = int(fields[pos]) if pos and len(fields) > pos and fields[pos].lstrip(
                "-").isdigit() else -1
            self.error(req_id, 321, f"Error validating request.-'{handler.name}' : cause - {e}")

    def _over_rate(self) -> bool:
        over = self.rate.hit()
        if over is None:
            return False
        # IB: error 100 and, in practice, the connection is dropped.
        self.sim.stats.violation("message_rate", self.st.client_id, -1)
        if not self.sim.frozen and self.transport is not None:
            self.transport.write(frame(error_message(self.st.version, -1, 100,
                                               RATE_TEXT.format(n=over))))
            self.sim.stats.count_error(100)
        self.close()
        return True

    async def _handshake(self, fields: list[str]) -> None:
        try:
            lo, hi, _opts = parse_version_range(fields[0] if fields else "")
        except ValueError:
            log.warning("%s: bad version string %r", self.peer, fields)
            self.close()
            return
        if hi < MIN_SERVER_VERSION or lo > hi:
            # The gateway cannot speak anything this old: it hangs up.
            log.warning("%s: client versions %s..%s unsupported", self.peer, lo, hi)
            self.close()
            return
        # Like TWS: answer min(client max, own max); a client whose minimum is above
        # that sees the lower number and disconnects by itself.
        self.st.version = min(hi, MAX_SERVER_VERSION)
        now = self.sim.now_dt().astimezone(self.sim.tz)
        stamp = now.strftime("%Y%m%d %H:%M:%S ") + (now.tzname() or "EST")
        if self.transport is not None and not self.sim.frozen:
            self.transport.write(frame_raw([str(self.st.version), stamp]))
        self.phase = "start"

    async def _start_api(self, fields: list[str]) -> None:
        client_id = int(fields[2]) if len(fields) > 2 and fields[2] else 0
        if any(s is not self and s.st.client_id == client_id and not s.closed
               for s in self.sim.sessions):
            self.error(-1, 326, "Unable to connect as the client id is already in use. "
                               "Retry with a unique client id.")
            self.sim.stats.clash(client_id)
            self.close()
            return
        if sum(1 for s in self.sim.sessions if s.st.client_id >= 0) >= self.sim.max_clients:
            log.warning("%s: more than %s clients, refused", self.peer, self.sim.max_clients)
            self.close()
            return
        self.st.client_id = client_id
        self.phase = "api"
        log.info("client %s connected from %s (v%s)", client_id, self.peer, self.st.version)
        asyncio.get_running_loop().create_task(self._become_ready())

    async def _become_ready(self) -> None:
        delay = self.sim.ready_delay
        if delay:
            await asyncio.sleep(delay)
        await self.sim.unfrozen()
        if self.closed:
            return
        self.send([Out.MANAGED_ACCTS, 1, self.sim.broker.account])
        self.send([Out.NEXT_VALID_ID, 1, self.sim.broker.next_valid_id(self.st.client_id)])
        self.st.ready = True
        self.ready_event.set()
        for code, text in self.sim.farm_notices():
            self.error(-1, code, text)

