"""The one order pipeline every family uses: validate, guards, idempotency, connector.

A family only builds the order fields (``fields``) and shapes the answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple

from aiohttp import web

from .. import models
from ..asks import Order
from ..errors import IbhostError
from . import guards
from .common import connector, contract
from .idempotency import Entry, check_key, fingerprint
from .keys import CONFIG_KEY, IDEMPOTENCY_KEY, METRICS_KEY

log = logging.getLogger("ibhost.gateway.orders")

def fields(body: dict[str, Any]) -> dict[str, Any]:
    """The order read and checked as the connector will read it (asks.Order): a bad
    one is refused before the guards, the store or the connector see it."""
    return Order.read(body).body()


class Outcome(NamedTuple):
    status: int  # the HTTP status of the first answer
    body: Any  # the connector's answer: the order as IB last reported it
    replayed: bool = False  # answered from the idempotency store
    stale: bool = False  # replayed as stored: the connector could not say what is current

    @property
    def headers(self) -> dict[str, str] | None:
        if not self.replayed:
            return None
        if self.stale:
            return {"Idempotent-Replayed": "true", "Idempotent-Stale": "true"}
        return {"Idempotent-Replayed": "true"}


async def submit(request: web.Request, fwd: dict[str, Any], raw_key: str | None,
                 ttl: float | None = None) -> Outcome:
    """Guards, then the connector, under the Idempotency-Key if one was given.

    Once IB has the order its answer is never lost to the store: a store that cannot
    be written is logged and counted, and the order's answer still goes out."""
    app = request.app
    key = check_key(raw_key) if raw_key is not None else None
    if key is not None and not fwd.get("orderRef"):
        fwd["orderRef"] = key  # carried to IB, so a connector restart still dedupes

    async def price_of() -> float | None:
        snap = await connector(request).snapshot(contract(fwd))
        return snap.ask or snap.last or snap.close or snap.bid or None

    async def go() -> tuple[int, Any]:
        try:
            await guards.check_order(app[CONFIG_KEY].trading, fwd, price_of)
        except IbhostError as e:
            if "guard" in e.extra:
                app[METRICS_KEY].guard_rejections.labels(e.extra["guard"]).inc()
            raise
        placed = await connector(request).place_order(fwd)
        # kept as plain JSON values: the idempotency store keeps the answer as it went out
        return (200 if placed.duplicate else 201), models.plain(placed)

    if key is None:
        # shielded: a client that hangs up must not cut an order off half-way
        status, result = await asyncio.shield(go())
        return Outcome(status, result)
    store = app[IDEMPOTENCY_KEY]
    errors = app[METRICS_KEY].idempotency_store_errors
    fp = fingerprint(fwd)

    async def keyed() -> Outcome:
        async with store.lock(key):
            try:
                prior = await store.get(key, fp)
            except IbhostError:
                raise  # the key was used with another body
            except Exception as e:
                # nothing is placed yet: refusing is safe, placing could be a double
                errors.labels("read").inc()
                log.error("idempotency store unreadable (%s: %s); order refused",
                          type(e).__name__, e)
                raise IbhostError("unavailable", "the idempotency store cannot be read; "
                                  "no order was placed") from None
            if prior is not None:
                app[METRICS_KEY].idempotent_replays.inc()
                return await current(request, key, prior)
            status, result = await go()
            try:
                await store.put(key, fp, status, result, ttl=ttl)
            except Exception as e:
                errors.labels("write").inc()
                log.error("idempotency store write failed (%s: %s); order %s answered "
                          "without it", type(e).__name__, e,
                          result.get("orderId") if isinstance(result, dict) else "?")
            return Outcome(status, result)

    return await asyncio.shield(keyed())


async def current(request: web.Request, key: str, prior: Entry) -> Outcome:
    """A replay answers the order as IB knows it now, not as it was first answered (an
    order caught by a frozen connection is first answered PendingSubmit, permId 0).
    The newer status is stored; without the connector the stored answer is replayed,
    marked stale."""
    old = prior.body
    ref = old.get("orderRef") if isinstance(old, dict) else None
    if not ref:
        return Outcome(prior.status, old, replayed=True, stale=True)
    params = {"orderRef": ref, "orderId": old.get("orderId") or 0,
              "permId": old.get("permId") or 0}
    if old.get("clientId") is not None:
        params["clientId"] = old["clientId"]
    try:
        now = await connector(request).order_by_ref(params)
    except IbhostError as e:  # not running, not connected to IB, or the order unknown
        log.info("replaying order %s as stored: %s", old.get("orderId"), e.code)
        return Outcome(prior.status, old, replayed=True, stale=True)
    fresh = {**models.plain(now), "duplicate": old.get("duplicate", False)}
    if fresh != old:
        try:
            await request.app[IDEMPOTENCY_KEY].refresh(key, fresh)
        except Exception as e:
            request.app[METRICS_KEY].idempotency_store_errors.labels("write").inc()
            log.error("idempotency store refresh failed (%s: %s)", type(e).__name__, e)
    return Outcome(prior.status, fresh, replayed=True)
