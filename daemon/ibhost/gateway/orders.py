"""The one order pipeline every family uses: validate, guards, idempotency, connector.

A family only builds the order fields (``fields``) and shapes the answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..errors import IbhostError, bad_request
from ..validate import opt_float, opt_str
from . import guards
from .common import connector, contract
from .idempotency import check_key, fingerprint
from .keys import CONFIG_KEY, IDEMPOTENCY_KEY, METRICS_KEY

ORDER_FIELDS = ("action", "quantity", "orderType", "limitPrice", "stopPrice", "tif",
                "outsideRth", "orderRef", "dedupe")


def fields(body: dict[str, Any]) -> dict[str, Any]:
    """Validate what the guards read; the connector validates the rest again."""
    opt_str(body, "action", upper=True, choices=("BUY", "SELL"))
    if "action" not in body:
        raise bad_request("action", "is required")
    if opt_float(body, "quantity", minimum=1e-4, maximum=1e9) is None:
        raise bad_request("quantity", "is required")
    opt_str(body, "orderType", "LMT", upper=True, choices=("MKT", "LMT", "STP", "STP LMT"))
    opt_float(body, "limitPrice", positive=True, maximum=1e9)
    opt_float(body, "stopPrice", positive=True, maximum=1e9)
    opt_str(body, "secType", "STK", upper=True)
    if not opt_str(body, "symbol") and not body.get("conId"):
        raise bad_request("symbol", "is required")
    return {**contract(body), **{k: body[k] for k in ORDER_FIELDS if k in body}}


async def submit(request: web.Request, fwd: dict[str, Any], raw_key: str | None,
                 ttl: float | None = None) -> tuple[int, Any, bool]:
    """Guards, then the connector, under the Idempotency-Key if one was given.

    Returns (HTTP status, the connector's answer, replayed from the store)."""
    app = request.app
    key = check_key(raw_key) if raw_key is not None else None
    if key is not None and not fwd.get("orderRef"):
        fwd["orderRef"] = key  # carried to IB, so a connector restart still dedupes

    async def price_of() -> float | None:
        snap = await connector(request, "POST", "/snapshot", body=contract(fwd))
        for k in ("ask", "last", "close", "bid"):
            if snap.get(k):
                return float(snap[k])
        return None

    async def go() -> tuple[int, Any]:
        try:
            await guards.check_order(app[CONFIG_KEY].trading, fwd, price_of)
        except IbhostError as e:
            if "guard" in e.extra:
                app[METRICS_KEY].guard_rejections.labels(e.extra["guard"]).inc()
            raise
        result = await connector(request, "POST", "/orders", body=fwd)
        return (200 if result.get("duplicate") else 201), result

    if key is None:
        # shielded: a client that hangs up must not cut an order off half-way
        status, result = await asyncio.shield(go())
        return status, result, False
    store = app[IDEMPOTENCY_KEY]
    fp = fingerprint(fwd)

    async def keyed() -> tuple[int, Any, bool]:
        async with store.lock(key):
            prior = store.get(key, fp)
            if prior is not None:
                app[METRICS_KEY].idempotent_replays.inc()
                return prior["status"], prior["body"], True
            status, result = await go()
            if ttl is None:
                await store.put(key, fp, status, result)
            else:
                await store.put(key, fp, status, result, ttl=ttl)
            return status, result, False

    return await asyncio.shield(keyed())
