"""The soak's load: concurrent callers sending a seeded mix of requests to the
gateway, each answer checked as it comes.

Historical bars are compared with the simulator's own truth for the same seed;
orders with an idempotency key are sent twice (the second must answer the first's
order) and looked up at the simulator (one order there, never none or two); every
order placed is cancelled again. A 503/504 or a lost connection is the truthful
answer during a fault and is counted, not a violation; no answer by the deadline is.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sim.market import Market

SYMBOLS = ["AAPL", "MSFT", "SPY", "QQQ", "NVDA"]
DAYS = [d for d in (dt.date(2025, 11, 3) + dt.timedelta(days=i) for i in range(20))
        if d.weekday() < 5 and d != dt.date(2025, 11, 27) and d != dt.date(2025, 11, 28)]
DEADLINE = 30.0  # seconds each request may take (sent as ?timeout=)


class Load:
    def __init__(
        self,
        url: str,
        key: str,
        market: Market,
        *,
        rng: random.Random,
        end: float,
        count: collections.Counter[str],
        violation: Callable[[str], None],
        sim_state: Callable[[str], Awaitable[dict[str, Any]]],
    ) -> None:
        self.url = url
        self.key = key
        self.market = market  # the simulator's truth for the same seed
        self.universe = market.universe
        self.rng = rng  # the run's: each caller's own generator is seeded from it
        self.end = end  # time.monotonic() at which the callers stop
        self.count = count
        self.violation = violation
        self.sim_state = sim_state

    async def caller(self, http: Any, n: int) -> None:
        rng = random.Random(self.rng.random())
        kinds = ["bars"] * 4 + ["validate"] * 2 + ["head", "snapshot", "snapshot",
                                                     "order_key", "order", "health"]
        while time.monotonic() < self.end:
            kind = rng.choice(kinds)
            try:
                await getattr(self, f"do_{kind}")(http, rng)
            except _Unavailable:
                self.count[f"{kind}.unavailable"] += 1
                await asyncio.sleep(0.25)  # as a client would, before it asks again
            except TimeoutError:
                self.count[f"{kind}.hung"] += 1
                self.violation(f"{kind}: no answer within {DEADLINE + 10:g}s")
            self.count[kind] += 1

    async def call(self, http: Any, method: str, path: str, body: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        import aiohttp

        sep = "&" if "?" in path else "?"
        try:
            async with asyncio.timeout(DEADLINE + 10):
                async with http.request(method, f"{self.url}{path}{sep}timeout={DEADLINE:g}",
                                        json=body, headers={"X-API-Key": self.key,
                                                            **(headers or {})}) as r:
                    data = await r.read()
                    status = r.status
        except (aiohttp.ClientConnectionError, ConnectionError, OSError) as e:
            raise _Unavailable(str(e)) from None
        if status in (503, 504):
            raise _Unavailable(str(status))
        if status >= 500:
            self.violation(f"{method} {path}: {status} {data[:200]!r}")
            raise _Unavailable(str(status))
        return status, json.loads(data) if data else None

    async def do_bars(self, http: Any, rng: random.Random) -> None:
        sym, day = rng.choice(SYMBOLS), rng.choice(DAYS)
        start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        st, body = await self.call(http, "POST", "/v1/data/historical", {
            "symbol": sym, "timeframe": "5m", "start": start.isoformat(),
            "end": (start + dt.timedelta(days=1)).isoformat()})
        if st != 200:
            self.violation(f"bars {sym} {day}: {st} {str(body)[:200]}")
            return
        from .sim.universe import Query

        lst = self.universe.match(Query(symbol=sym, secType="STK", currency="USD"))[0]
        truth = self.market.bars(lst, int(start.timestamp()), int(start.timestamp()) + 86400,
                                 300, "TRADES", True)
        data = body["data"]
        got = list(zip(data["close"], data["volume"], strict=True))
        want = [(b.close, b.volume) for b in truth]
        if got != want or len(data["timestamp"]) != len(truth):
            self.count["bars.wrong"] += 1
            self.violation(f"bars {sym} {day}: {len(got)} bars differ from the truth "
                           f"({len(want)})")

    async def do_validate(self, http: Any, rng: random.Random) -> None:
        sym = rng.choice(SYMBOLS)
        st, body = await self.call(http, "POST", "/v1/data/validate", {"symbol": sym})
        if st != 200 or body.get("symbol") != sym:
            self.violation(f"validate {sym}: {st} {str(body)[:200]}")

    async def do_head(self, http: Any, rng: random.Random) -> None:
        sym = rng.choice(SYMBOLS)
        st, body = await self.call(http, "GET", f"/v1/data/head-timestamp?symbol={sym}")
        if st != 200:
            self.violation(f"head timestamp {sym}: {st} {str(body)[:200]}")

    async def do_snapshot(self, http: Any, rng: random.Random) -> None:
        sym = rng.choice(SYMBOLS)
        st, body = await self.call(http, "POST", "/v1/market/snapshot", {"symbol": sym})
        if st != 200:
            self.violation(f"snapshot {sym}: {st} {str(body)[:200]}")
        elif body.get("bid") is not None and body.get("ask") is not None \
                and body["bid"] > body["ask"]:
            self.violation(f"snapshot {sym}: bid {body['bid']} over ask {body['ask']}")

    async def do_health(self, http: Any, rng: random.Random) -> None:
        await self.call(http, "GET", "/v1/health")

    async def do_order(self, http: Any, rng: random.Random) -> None:
        st, body = await self.call(http, "POST", "/v1/orders", {
            "symbol": rng.choice(SYMBOLS), "action": rng.choice(["BUY", "SELL"]),
            "quantity": 1, "orderType": "LMT", "limitPrice": 1.0})
        if st not in (200, 201):
            self.violation(f"order: {st} {str(body)[:200]}")
            return
        await self.cancel(http, body)

    async def cancel(self, http: Any, order: Any) -> None:
        """Cancel an order the load placed, as a strategy would once it no longer wants
        it: working orders are state IB and the library keep, and a run of hours would
        otherwise leave tens of thousands working."""
        if not isinstance(order, dict) or not order.get("orderId"):
            return
        try:
            st, body = await self.call(http, "DELETE", f"/v1/orders/{order['orderId']}")
        except _Unavailable:
            self.count["cancel.unavailable"] += 1
            return
        self.count["cancel"] += 1
        # 409: already done (cancelled by a reconnect's reconciliation, or a retry's
        # first answer); 404: the connection that placed it is gone and IB has it as
        # another client's; neither is a fault of ibhost's
        if st not in (200, 404, 409):
            self.violation(f"cancel {order['orderId']}: {st} {str(body)[:200]}")

    async def do_order_key(self, http: Any, rng: random.Random) -> None:
        key = f"soak-{rng.getrandbits(48):012x}"
        order = {"symbol": rng.choice(SYMBOLS), "action": "BUY", "quantity": 1,
                 "orderType": "LMT", "limitPrice": 1.0}
        before = (await self.sim_state(key))["stats"]["restarts"]
        first: Any = None
        for _ in (1, 2):  # the second is a client's retry: never a second order
            try:
                st, body = await self.call(http, "POST", "/v1/orders", order,
                                           {"Idempotency-Key": key})
            except _Unavailable:
                continue
            if st not in (200, 201):
                self.violation(f"order with a key: {st} {str(body)[:200]}")
                return
            if first is None:
                first = body
            elif body.get("orderId") != first.get("orderId"):
                self.count["orders.doubled"] += 1
                self.violation(f"order {key}: a retry answered another order")
        state = await self.sim_state(key)
        if state["stats"]["restarts"] != before:
            return  # the simulator forgot its orders meanwhile: nothing to compare
        at_ib = [o for o in state["orders"] if o["orderRef"] == key]
        if len(at_ib) > 1:
            self.count["orders.doubled"] += 1
            self.violation(f"order {key}: {len(at_ib)} orders at IB")
        elif first is not None and not at_ib:
            self.count["orders.lost"] += 1
            self.violation(f"order {key}: answered, but not at IB")
        await self.cancel(http, first)


class _Unavailable(Exception):
    """503/504 or no connection: the truthful answer while a fault lasts."""
