"""The connector's control socket: HTTP/1.1 + JSON on ``run/connector.sock``.

/health answers from memory and never waits on IB; positions, portfolio, account
summary, open orders and executions are read from the connection's synchronised
state, option chains and contract details from a cache (each such answer carries
``X-Ibhost-State-Age``); everything else goes through the service and so the
pacing scheduler. Errors are JSON from the catalogue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .. import __version__
from ..config import Config, describe
from ..errors import IbhostError, bad_request, code_for_http_status
from ..ipc import JOB_HEADER
from ..validate import (
    json_body,
)
from . import api_market, api_orders
from .apibase import (
    CONFIG_KEY,
    METRICS_KEY,
    SCHEDULER_KEY,
    SERVICE_KEY,
    SESSION_KEY,
    STARTED_KEY,
    STREAMS_KEY,
)
from .asks import (
    HistoricalCall,
    OrderEvents,
    Reconnect,
    StreamHold,
    StreamOpen,
    StreamRelease,
)
from .bars import records
from .contracts import parse_spec
from .metrics import ConnectorMetrics, route_label
from .pacing import PRIORITIES, Scheduler
from .service import Service
from .session import Session, State
from .streams.hub import StreamHub
from .values import DEADLINE, JOB

log = logging.getLogger("ibhost.connector.api")

CHANNEL_IDLE = 5.0  # seconds: the longest a stream channel stays silent


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    t0 = time.perf_counter()
    resp = await handler(request)
    if request.path != "/metrics":
        request.app[METRICS_KEY].request_seconds.labels(
            route_label(request.path), str(resp.status)).observe(time.perf_counter() - t0)
    return resp


DEADLINE_HEADER = "X-Ibhost-Deadline"  # seconds the caller will wait for this answer


@web.middleware
async def deadline_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Hold every request to its caller's deadline: past it the request fails with
    504 and whatever it still has open at IB is cancelled (the handler is cancelled,
    and so are its queued and running IB requests). Every IB request it makes is
    paced as its caller's (the job header)."""
    job = JOB.set(request.headers.get(JOB_HEADER, "")[:64])
    try:
        return await _within_deadline(request, handler)
    finally:
        JOB.reset(job)


async def _within_deadline(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    raw = request.headers.get(DEADLINE_HEADER)
    if raw is None:
        return await handler(request)
    try:
        seconds = float(raw)
    except ValueError:
        raise bad_request(DEADLINE_HEADER, "must be a number of seconds") from None
    if not 0 < seconds <= 86400:
        raise bad_request(DEADLINE_HEADER, "must be between 0 and 86400 seconds")
    loop = asyncio.get_running_loop()
    token = DEADLINE.set(loop.time() + seconds)
    try:
        async with asyncio.timeout(seconds):
            return await handler(request)
    except TimeoutError:
        raise IbhostError("timeout", f"no answer within the caller's deadline of "
                                     f"{seconds:g}s; open IB requests were cancelled") from None
    finally:
        DEADLINE.reset(token)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except IbhostError as e:
        return web.json_response(e.to_dict(), status=e.status)
    except web.HTTPException as e:
        if e.status >= 400:
            return web.json_response({"error": {"code": code_for_http_status(e.status),
                                                "message": e.reason}},
                                     status=e.status)
        raise
    except Exception:
        rid = uuid.uuid4().hex[:12]
        log.exception("unexpected error (request %s) on %s %s", rid, request.method,
                      request.path)
        return web.json_response({"error": {"code": "internal", "message":
                                            f"unexpected error; see the connector log, "
                                            f"request id {rid}"}}, status=500)


def health_dict(session: Session, scheduler: Scheduler) -> dict[str, Any]:
    d = session.diag
    dd = d.as_dict()
    state = session.state
    status = {"ready": "ok", "degraded": "degraded"}.get(state.value, "down")
    reason = d.stateReason
    m = session.maintenance() if status == "down" else None
    if m is not None:  # down by IB's schedule, not by a fault
        w, until = m
        status = "maintenance"
        reason = (f"IB's scheduled maintenance '{w.text}' ({session.schedule.tz.key}) until "
                  f"{until:%Y-%m-%d %H:%M} UTC; {reason}")
    return {
        "status": status, "state": state.value, "reason": reason,
        "maintenanceUntil": None if m is None else m[1].isoformat(),
        "since": dd["since"], "clientId": d.clientId,
        "competingSession": d.competingSession, "farms": dict(d.farms),
        "lastHeartbeatAt": dd["lastHeartbeatAt"],
        "lastIbErrorCode": d.lastIbErrorCode, "lastIbErrorMessage": d.lastIbErrorMessage,
        "lastIbErrorAt": dd["lastIbErrorAt"], "reconnectAttempts": d.reconnectAttempts,
        "heartbeatFailures": d.heartbeatFailures, "lastDisconnectAt": dd["lastDisconnectAt"],
        "connectedSince": dd["connectedSince"], "reconnectFailures": d.reconnectFailures,
        "pacingQueue": scheduler.depth,
    }


async def health(request: web.Request) -> web.Response:
    return web.json_response(health_dict(request.app[SESSION_KEY], request.app[SCHEDULER_KEY]))


async def status(request: web.Request) -> web.Response:
    session, sched = request.app[SESSION_KEY], request.app[SCHEDULER_KEY]
    st = sched.stats
    return web.json_response({
        "service": "ibhost-connector", "version": __version__,
        "backend": f"{session.backend.name} {session.backend.version}",
        "uptimeSeconds": round(time.monotonic() - request.app[STARTED_KEY], 1),
        "connection": session.diag.as_dict(),
        "pacing": {
            "queueDepth": sched.depth, "windowUsed": sched.window_used(),
            "granted": st.granted, "cacheHits": st.cache_hits, "coalesced": st.coalesced,
            "delayedByRule": dict(st.delayed),
            "waitSecondsTotal": round(st.wait_seconds_total, 3),
            "waitSecondsMax": round(st.wait_seconds_max, 3),
            "throttled": st.throttled, "openLimit": round(sched.open.limit, 2),
            "open": sched.open.open,
        },
        "subscriptions": len(request.app[STREAMS_KEY].subs),
        "historicalJobs": list(request.app[SERVICE_KEY].history.jobs.values()),
        "config": describe(request.app[CONFIG_KEY]),
    })


async def reconnect(request: web.Request) -> web.Response:
    reason = Reconnect.read(await json_body(request)).reason
    request.app[SESSION_KEY].request_reconnect(reason)
    return web.json_response({"ok": True, "reason": reason},
                             status=202)


async def historical(request: web.Request) -> web.StreamResponse:
    ask = HistoricalCall.read(await json_body(request))
    history = request.app[SERVICE_KEY].history
    kw: dict[str, Any] = dict(
        bar_size=ask.bar_size, what=ask.whatToShow, use_rth=ask.useRTH, start=ask.start,
        end=ask.end, duration=ask.duration or None, priority=PRIORITIES[ask.priority],
        job=request.headers.get(JOB_HEADER, "")[:64])
    spec = ask.contract
    # an answer the gateway relays as it is: v1's columns (``columns: true``), or
    # KTRDR's or the bridge's shape (connector/shapes.py)
    shape = ask.layout
    if shape:
        return web.Response(body=await history.encoded(spec, shape, **kw),
                            content_type="application/json")
    if not ask.stream:
        return web.json_response(await history.historical(spec, **kw))
    return await _stream_bars(request, history.parts(spec, **kw))


async def _stream_bars(request: web.Request, parts: Any) -> web.StreamResponse:
    """NDJSON: the head, one line of bars per chunk in time order as it arrives, then
    ``{"done": true, "count": n}`` or ``{"error": {...}}``. An error before the head
    is an ordinary error answer."""
    head = await anext(parts)  # resolution and validation errors are plain answers
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    await resp.write(json.dumps(head).encode() + b"\n")
    count = 0
    try:
        async for cols in parts:
            count += len(cols["t"])
            await resp.write(orjson.dumps({"bars": records(cols)}) + b"\n")
        await resp.write(json.dumps({"done": True, "count": count}).encode() + b"\n")
    except IbhostError as e:
        await resp.write(json.dumps(e.to_dict()).encode() + b"\n")
    finally:
        await parts.aclose()
    await resp.write_eof()
    return resp


# --- live streams -------------------------------------------------------------------

async def stream(request: web.Request) -> web.StreamResponse:
    """The stream channel: NDJSON, a hello line, then (with ``since``) the journalled
    order events after that sequence number, then every update as it happens."""
    hub = request.app[STREAMS_KEY]
    since = StreamOpen.read(request.query, query=True).since
    ch = hub.open_channel()
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                       "Cache-Control": "no-store"})
    try:
        await resp.prepare(request)
        await resp.write(hub.hello(ch) + b"\n")
        replayed = since
        if since >= 0:
            batch = []
            for seq, line in hub.journal_since(since):
                batch.append(line)
                replayed = seq
            if batch:
                await resp.write(b"\n".join(batch) + b"\n")
        q = ch.queue
        while not ch.closed:
            if q.empty():
                ch.wake.clear()
                try:  # a line at least every CHANNEL_IDLE: the reader knows we live
                    async with asyncio.timeout(CHANNEL_IDLE):
                        await ch.wake.wait()
                except TimeoutError:
                    await resp.write(b'{"type":"idle"}\n')
                continue
            out: list[bytes] = []
            while not q.empty() and len(out) < 1000:
                seq, line = q.get_nowait()
                if seq and seq <= replayed:
                    continue  # already sent from the journal
                out.append(line)
            if out:
                await resp.write(b"\n".join(out) + b"\n")
        await resp.write(orjson.dumps({"type": "closed", "reason": ch.closed}) + b"\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.close_channel(ch)
    return resp


async def stream_hold(request: web.Request) -> web.Response:
    body = await json_body(request)
    ask = StreamHold.read(body)
    spec = None if ask.account_wide(body) else parse_spec(body)
    return web.json_response(await request.app[STREAMS_KEY].hold(ask.channel, ask.kind, spec,
                                                                 ask.params()),
                             status=201)


async def stream_release(request: web.Request) -> web.Response:
    channel = StreamRelease.read(request.query, query=True).channel
    key = request.match_info["key"]
    request.app[STREAMS_KEY].release(channel, key)
    return web.json_response({"ok": True, "key": key})


async def streams_list(request: web.Request) -> web.Response:
    hub = request.app[STREAMS_KEY]
    return web.json_response({"streams": hub.describe(), "lines": hub.lines(),
                              "channels": len(hub.channels), "orderSeq": hub.journal.seq})


async def order_events(request: web.Request) -> web.Response:
    """Journalled order events after ``since`` (at most ``limit``), oldest first: one
    JSON object, or with ``format=ndjson`` a head line (``firstSeq``, ``seq`` and the
    events' ``seqs``) and then each event's journal line, to relay as it is."""
    hub = request.app[STREAMS_KEY]
    ask = OrderEvents.read(request.query, query=True)
    since, limit, lines = ask.since, ask.limit, ask.format == "ndjson"
    seqs: list[bytes] = []
    out: list[bytes] = []
    for seq, line in hub.journal_since(since):
        seqs.append(b"%d" % seq)
        out.append(line)
        if len(out) >= limit:
            break
    if lines:
        head = b'{"firstSeq":%d,"seq":%d,"seqs":[%s]}' % (
            hub.journal.first, hub.journal.seq, b",".join(seqs))
        return web.Response(body=b"\n".join([head, *out]) + b"\n",
                            content_type="application/x-ndjson")
    body = b'{"firstSeq":%d,"seq":%d,"events":[%s]}' % (
        hub.journal.first, hub.journal.seq, b",".join(out))
    return web.Response(body=body, content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS_KEY].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/health", health)
    r.add_get("/metrics", metrics)
    r.add_get("/status", status)
    r.add_post("/reconnect", reconnect)
    r.add_post("/historical", historical)
    api_market.add_routes(r)
    api_orders.add_routes(r)
    r.add_get("/stream", stream)
    r.add_get("/streams", streams_list)
    r.add_post("/streams", stream_hold)
    r.add_delete("/streams/{key}", stream_release)
    r.add_get("/order-events", order_events)


def init_app(cfg: Config, session: Session, scheduler: Scheduler,
             service: Service, streams: StreamHub | None = None) -> web.Application:
    app = web.Application(middlewares=[metrics_middleware, errors_middleware,
                                       deadline_middleware],
                          client_max_size=1 << 20)
    app[CONFIG_KEY] = cfg
    app[SESSION_KEY] = session
    app[SCHEDULER_KEY] = scheduler
    app[SERVICE_KEY] = service
    app[STREAMS_KEY] = streams if streams is not None else StreamHub(service, cfg)
    app[STARTED_KEY] = time.monotonic()
    app[METRICS_KEY] = ConnectorMetrics(session, scheduler)
    app[METRICS_KEY].registry.register(app[STREAMS_KEY].collector)
    setup_routes(app)
    return app


__all__ = ["State", "init_app"]
