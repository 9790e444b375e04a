"""``AsyncIBHostClient``: the gateway's API on aiohttp."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp

from .api import Api, Call, service_url
from .errors import IBHostError, _error_from, _health_of
from .frames import Progress, _CsvLines, _progress_out, csv_frame
from .policy import RETRY_STATUSES, CircuitBreaker, _Policy
from .sse import _Resume, _Sse, _stream_params

if TYPE_CHECKING:
    import pandas as pd


class AsyncIBHostClient:
    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float = 120.0, retries: int = 3, backoff: float = 0.5,
                 max_backoff: float = 8.0, breaker: CircuitBreaker | None = None) -> None:
        self.base_url = (base_url or service_url()).rstrip("/")
        self.api_key = api_key or os.environ.get("IB_HOST_SERVICE_API_KEY")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.policy = _Policy(retries, backoff, max_backoff, breaker or CircuitBreaker())
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncIBHostClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: dict[str, Any] | None = None,
                      headers: dict[str, str] | None = None) -> Any:
        hdrs = dict(headers or {})
        if self.api_key:
            hdrs["X-API-Key"] = self.api_key
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self.timeout)
        retry_ok = self.policy.retryable(method, path, hdrs)
        attempt = 0
        while True:
            self.policy.breaker.before()
            try:
                async with self._http.request(method, self.base_url + path, json=body,
                                              params=params, headers=hdrs) as r:
                    text = await r.text()
                    status = r.status
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                self.policy.breaker.failure()
                err: IBHostError = IBHostError(0, "connection_error", str(e) or type(e).__name__)
            else:
                if status < 400:
                    self.policy.breaker.success()
                    return json.loads(text) if text else None
                err = _error_from(status, text)
                if status in RETRY_STATUSES:
                    self.policy.breaker.failure()
                else:
                    self.policy.breaker.success()  # the host answered: it is up
                    raise err
            if not retry_ok or attempt >= self.policy.retries:
                raise err
            await asyncio.sleep(self.policy.delay(attempt))
            attempt += 1

    # --- API (see Api for what each sends) -------------------------------------------

    async def call(self, c: Call) -> Any:
        return c.shape(await self.request(c.method, c.path, body=c.body, params=c.params,
                                          headers=c.headers))

    async def health(self) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await self.call(Api.health())
            return result
        except IBHostError as e:
            return _health_of(e)

    async def fetch_historical_data(self, symbol: str, timeframe: str,
                                    start: dt.datetime | dt.date | str | None = None,
                                    end: dt.datetime | dt.date | str | None = None,
                                    *, progress: Any = None, **kw: Any) -> pd.DataFrame:
        """Bars as a DataFrame, from ``start``, or ``duration="5 D"`` back from ``end``
        (default: now, by IB's clock). ``progress``: a bar while they stream in
        (default: on a terminal), False for none, or a stream to draw it on."""
        out = _progress_out(progress)
        call = Api.historical(symbol, timeframe, start, end, **kw)
        if out is None:
            df: pd.DataFrame = await self.call(call)
            return df
        hdrs = {"X-API-Key": self.api_key} if self.api_key else {}
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self.timeout)
        sink = _CsvLines(Progress(out, call.body.get("start"), call.body.get("end")))
        try:
            async with self._http.post(self.base_url + call.path, json=call.body,
                                       params={"format": "csv"}, headers=hdrs) as r:
                if r.status >= 400:
                    raise _error_from(r.status, await r.text())
                async for data in r.content.iter_any():
                    sink.feed(data)
        except aiohttp.ClientError as e:
            raise IBHostError(0, "connection_error", str(e) or type(e).__name__) from e
        return csv_frame(sink.text())

    async def validate_symbol(self, symbol: str, **kw: Any) -> dict[str, Any]:
        return dict(await self.call(Api.validate(symbol, **kw)))

    # --- live streams (GET /v1/stream, Server-Sent Events) ----------------------------

    async def events(self, *, quotes: Any = (), bars: Any = (), bar_size: str = "1 min",
                     orders: bool = False, since: int | None = None,
                     reconnect: bool = True, **extra: Any) -> AsyncIterator[dict[str, Any]]:
        """Every event of one stream as a dict (``type``: subscribed, quote, bar,
        barUpdate, status, order, closed), reconnecting by itself after a failure
        and resuming order events after the last one seen. A 4xx (an unknown symbol,
        the line budget, a missing key) raises ``IBHostError``."""
        params = _stream_params(quotes, bars, bar_size, orders, **extra)
        resume = _Resume(self.policy, since)
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self.timeout)
        no_limit = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
        while True:
            try:
                async with self._http.get(self.base_url + "/v1/stream", params=params,
                                          headers=resume.headers(self.api_key),
                                          timeout=no_limit) as r:
                    if r.status >= 400:
                        err = _error_from(r.status, await r.text())
                        if r.status not in RETRY_STATUSES:
                            raise err
                    else:
                        parser = _Sse()
                        async for raw in r.content:
                            ev = parser.feed(raw.decode())
                            if ev is not None:
                                resume.seen(ev)
                                yield ev
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                if not reconnect:
                    raise IBHostError(0, "connection_error", str(e) or type(e).__name__
                                      ) from e
            if not reconnect:
                return
            await asyncio.sleep(resume.delay())

    async def quotes(self, symbols: Any, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        """``async for q in client.quotes(["AAPL", "MSFT"])``: quote events only (use
        ``events`` to see stale/resumed status too)."""
        async for ev in self.events(quotes=symbols, **kw):
            if ev.get("type") == "quote":
                yield ev

    async def bars(self, symbols: Any, bar_size: str = "1 min", **kw: Any
                   ) -> AsyncIterator[dict[str, Any]]:
        """Complete live-updating bars, each once, across reconnects."""
        async for ev in self.events(bars=symbols, bar_size=bar_size, **kw):
            if ev.get("type") == "bar":
                yield ev

    async def order_events(self, since: int | None = None, **kw: Any
                           ) -> AsyncIterator[dict[str, Any]]:
        """Order status, executions and commissions, each once and in order, resuming
        after ``since`` (a sequence number) and after every reconnect."""
        async for ev in self.events(orders=True, since=since, **kw):
            if ev.get("type") == "order":
                yield ev

    async def head_timestamp(self, symbol: str, **kw: Any) -> dt.datetime:
        ts: dt.datetime = await self.call(Api.head_timestamp(symbol, **kw))
        return ts

    async def option_chain(self, symbol: str, **kw: Any) -> dict[str, Any]:
        return dict(await self.call(Api.option_chain(symbol, **kw)))

    async def snapshot(self, symbol: str, **kw: Any) -> dict[str, Any]:
        return dict(await self.call(Api.snapshot(symbol, **kw)))

    async def place_order(self, symbol: str, action: str, quantity: float, *,
                          idempotency_key: str | None = None, **kw: Any) -> dict[str, Any]:
        return dict(await self.call(Api.place_order(symbol, action, quantity, idempotency_key,
                                                    **kw)))

    async def cancel_order(self, order_id: int) -> dict[str, Any]:
        return dict(await self.call(Api.cancel_order(order_id)))

    async def open_orders(self) -> list[dict[str, Any]]:
        return list(await self.call(Api.open_orders()))

    async def executions(self, **filters: Any) -> list[dict[str, Any]]:
        return list(await self.call(Api.executions(**filters)))

    async def positions(self) -> list[dict[str, Any]]:
        return list(await self.call(Api.positions()))
