"""What every route family shares: the route record, auth, the connector call, the
contract fields, and the one mapping from a failure to a catalogue error.

Each family (``v1``, ``ktrdr``, ``bridge``) only translates shapes; the calls,
guards and errors below are the same for all of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..asks import CONTRACT_NAMES
from ..connector.client import ConnectorClient
from ..errors import IbhostError
from ..ibrules import TIMEFRAMES
from ..ipc import KEYLESS, IpcError
from ..validate import json_body, timeout_seconds
from .keys import (
    AGE_RKEY,
    AUTH_KEY,
    CALLER_RKEY,
    CONFIG_KEY,
    CONNECTOR_KEY,
    METRICS_KEY,
    REQUEST_ID_RKEY,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
__all__ = ["TIMEFRAMES", "Route", "as_error", "auth", "connector",
           "contract", "deadline_of", "request_body", "trusted"]

CONTRACT_FIELDS = CONTRACT_NAMES  # what a contract is named with (asks.ContractSpec)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    family: str = "ibhost"  # ibhost | ktrdr | bridge: decides the error body's shape
    match: str = ""  # the path with a regex, when ``path`` alone would match too much


def contract(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in CONTRACT_FIELDS if k in m and m[k] is not None}


LIVE_PORTS = (4001, 7496)  # IB Gateway / TWS live ports; the paper ones are 4002 / 7497

# Paths that also take the key as ``Authorization: Bearer <key>``: Prometheus's scrape
# config can send that header (authorization.credentials_file) but no custom one
BEARER_PATHS = frozenset({"/metrics"})


def given_key(request: web.Request) -> str | None:
    """The API key a request carries: its X-API-Key header, or on BEARER_PATHS an
    ``Authorization: Bearer`` token (X-API-Key wins when both are sent)."""
    key = request.headers.get("X-API-Key")
    if key is None and request.path in BEARER_PATHS:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            key = token.strip()
    return key


def auth(request: web.Request, *, trading: bool = False, always: bool = False) -> None:
    """Raise 401/403 unless the request may proceed (``always``: a key is needed for
    reads too whenever keys are configured, as the wheel-strat bridge does)."""
    a = request.app[AUTH_KEY]
    try:
        if always and a.configured and not trading:
            a.check(given_key(request), trading=True)
        else:
            a.check(given_key(request), trading=trading)
    except IbhostError as e:
        reason = ("no_key_configured" if e.extra.get("guard") == "api_key" else
                  "missing" if e.code == "unauthorized" else "invalid")
        request.app[METRICS_KEY].auth_failures.labels(reason).inc()
        if e.extra.get("guard"):
            request.app[METRICS_KEY].guard_rejections.labels("api_key").inc()
        raise


def caller_of(request: web.Request) -> str:
    """``key-<digest>`` for a valid API key, else KEYLESS (worked out once a request)."""
    caller: str | None = request.get(CALLER_RKEY)
    if caller is None:
        caller = request[CALLER_RKEY] = request.app[AUTH_KEY].caller(given_key(request))
    return caller


def trusted(request: web.Request) -> bool:
    """May this caller see what names the connection, the account or the machine (IB's
    host and port, the client id, IB's error text, paths, order traffic)? Yes with a
    valid key, or when no key is configured (nothing to tell callers apart by). Asking
    counts no auth failure: the open pages ask on every probe."""
    return not request.app[AUTH_KEY].configured or caller_of(request) != KEYLESS


def job_of(request: web.Request) -> str:
    """``caller/request``: the connector shares IB between callers (a valid API key,
    else the one keyless bucket) and then between their requests."""
    return f"{caller_of(request)}/{request.get(REQUEST_ID_RKEY, '')}"


async def request_body(request: web.Request, *, required: bool = False) -> dict[str, Any]:
    """The request's JSON object, held to ``gateway.max_body`` and
    ``gateway.body_timeout``."""
    g = request.app[CONFIG_KEY].gateway
    return await json_body(request, g.max_body, required=required, timeout=g.body_timeout)


def deadline_of(request: web.Request) -> float:
    """Seconds this request may take: ``gateway.connector_timeout``, or less when the
    caller asks (``?timeout=`` or an ``X-Timeout`` header, in seconds)."""
    limit = request.app[CONFIG_KEY].gateway.connector_timeout
    raw = request.query.get("timeout") or request.headers.get("X-Timeout")
    if raw is None:
        return limit
    return min(timeout_seconds(raw), limit)


def _catalogue_error(e: IpcError) -> IbhostError:
    """A transport failure on connector.sock is a catalogue error too."""
    err = as_error(e)
    assert err is not None
    return err


AGE_HEADER = "X-Ibhost-State-Age"


def note_age(request: web.Request, answer_headers: Mapping[str, str]) -> None:
    """Keep the age of a connector answer read from the connection's state or a cache
    (the oldest, when a route combines several), for the response's AGE_HEADER."""
    raw = answer_headers.get(AGE_HEADER.lower())
    if raw is None:
        return
    try:
        age = float(raw)
    except ValueError:
        return
    request[AGE_RKEY] = max(age, request.get(AGE_RKEY, 0.0))


def connector(request: web.Request) -> ConnectorClient:
    """connector.sock for this request: held to the caller's deadline, paced as the
    caller's job, its answers' state ages kept, failures in the catalogue."""
    return request.app[CONNECTOR_KEY].for_caller(
        deadline=deadline_of(request), job=job_of(request),
        on_answer=lambda headers: note_age(request, headers),
        on_failure=_catalogue_error)


def as_error(exc: BaseException) -> IbhostError | None:
    """The catalogue error for a failure a handler let through (None: not ours)."""
    if isinstance(exc, IbhostError):
        return exc
    if isinstance(exc, IpcError):
        if exc.timeout:
            return IbhostError("timeout", "no answer within the request's deadline")
        return IbhostError("unavailable", "the connector is not running",
                           extra={"state": "down"})
    return None
