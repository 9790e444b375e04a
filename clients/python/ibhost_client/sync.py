"""``IBHostClient``: the same API, synchronous (urllib; safe where no event loop runs)."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .api import Api, Call, service_url
from .errors import IBHostError, _error_from, _health_of
from .frames import Progress, _CsvLines, _progress_out, csv_frame
from .policy import RETRY_STATUSES, CircuitBreaker, _Policy
from .sse import _Resume, _Sse, _stream_params

if TYPE_CHECKING:
    import pandas as pd


class IBHostClient:
    """The synchronous flavour (urllib; safe to use where no event loop runs)."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float = 120.0, retries: int = 3, backoff: float = 0.5,
                 max_backoff: float = 8.0, breaker: CircuitBreaker | None = None) -> None:
        self.base_url = (base_url or service_url()).rstrip("/")
        self.api_key = api_key or os.environ.get("IB_HOST_SERVICE_API_KEY")
        self.timeout = timeout
        self.policy = _Policy(retries, backoff, max_backoff, breaker or CircuitBreaker())

    def request(self, method: str, path: str, *, body: Any = None,
                params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> Any:
        hdrs = {"Accept": "application/json", **(headers or {})}
        if self.api_key:
            hdrs["X-API-Key"] = self.api_key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items()
                                                 if v is not None})
        retry_ok = self.policy.retryable(method, path, hdrs)
        attempt = 0
        while True:
            self.policy.breaker.before()
            req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    text = r.read().decode()
                self.policy.breaker.success()
                return json.loads(text) if text else None
            except urllib.error.HTTPError as e:
                err = _error_from(e.code, e.read().decode(errors="replace"))
                if e.code in RETRY_STATUSES:
                    self.policy.breaker.failure()
                else:
                    self.policy.breaker.success()
                    raise err from None
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                self.policy.breaker.failure()
                err = IBHostError(0, "connection_error", str(e))
            if not retry_ok or attempt >= self.policy.retries:
                raise err
            time.sleep(self.policy.delay(attempt))
            attempt += 1

    def call(self, c: Call) -> Any:
        return c.shape(self.request(c.method, c.path, body=c.body, params=c.params,
                                    headers=c.headers))

    def health(self) -> dict[str, Any]:
        try:
            result: dict[str, Any] = self.call(Api.health())
            return result
        except IBHostError as e:
            return _health_of(e)

    def events(self, *, quotes: Any = (), bars: Any = (), bar_size: str = "1 min",
               orders: bool = False, since: int | None = None, reconnect: bool = True,
               **extra: Any) -> Iterator[dict[str, Any]]:
        """``AsyncIBHostClient.events``, as a plain iterator."""
        params = _stream_params(quotes, bars, bar_size, orders, **extra)
        url = self.base_url + "/v1/stream?" + urllib.parse.urlencode(params)
        resume = _Resume(self.policy, since)
        while True:
            req = urllib.request.Request(url, headers=resume.headers(self.api_key))
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    parser = _Sse()
                    for raw in r:
                        ev = parser.feed(raw.decode())
                        if ev is not None:
                            resume.seen(ev)
                            yield ev
            except urllib.error.HTTPError as e:
                err = _error_from(e.code, e.read().decode(errors="replace"))
                if e.code not in RETRY_STATUSES or not reconnect:
                    raise err from None
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                if not reconnect:
                    raise IBHostError(0, "connection_error", str(e)) from e
            if not reconnect:
                return
            time.sleep(resume.delay())

    def quotes(self, symbols: Any, **kw: Any) -> Iterator[dict[str, Any]]:
        return (ev for ev in self.events(quotes=symbols, **kw) if ev.get("type") == "quote")

    def bars(self, symbols: Any, bar_size: str = "1 min", **kw: Any
             ) -> Iterator[dict[str, Any]]:
        return (ev for ev in self.events(bars=symbols, bar_size=bar_size, **kw)
                if ev.get("type") == "bar")

    def order_events(self, since: int | None = None, **kw: Any) -> Iterator[dict[str, Any]]:
        return (ev for ev in self.events(orders=True, since=since, **kw)
                if ev.get("type") == "order")

    def fetch_historical_data(self, symbol: str, timeframe: str,
                              start: dt.datetime | dt.date | str | None = None,
                              end: dt.datetime | dt.date | str | None = None,
                              *, progress: Any = None, **kw: Any) -> pd.DataFrame:
        """Bars as a DataFrame; ``progress`` as in the async client."""
        out = _progress_out(progress)
        call = Api.historical(symbol, timeframe, start, end, **kw)
        if out is None:
            df: pd.DataFrame = self.call(call)
            return df
        hdrs = {"Content-Type": "application/json", "Accept": "text/csv"}
        if self.api_key:
            hdrs["X-API-Key"] = self.api_key
        req = urllib.request.Request(self.base_url + call.path + "?format=csv",
                                     data=json.dumps(call.body).encode(), method="POST",
                                     headers=hdrs)
        sink = _CsvLines(Progress(out, call.body.get("start"), call.body.get("end")))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                while data := r.read1(1 << 16):
                    sink.feed(data)
        except urllib.error.HTTPError as e:
            raise _error_from(e.code, e.read().decode(errors="replace")) from None
        except (urllib.error.URLError, OSError) as e:
            raise IBHostError(0, "connection_error", str(e)) from e
        return csv_frame(sink.text())

    def validate_symbol(self, symbol: str, **kw: Any) -> dict[str, Any]:
        return dict(self.call(Api.validate(symbol, **kw)))

    def head_timestamp(self, symbol: str, **kw: Any) -> dt.datetime:
        ts: dt.datetime = self.call(Api.head_timestamp(symbol, **kw))
        return ts

    def option_chain(self, symbol: str, **kw: Any) -> dict[str, Any]:
        return dict(self.call(Api.option_chain(symbol, **kw)))

    def snapshot(self, symbol: str, **kw: Any) -> dict[str, Any]:
        return dict(self.call(Api.snapshot(symbol, **kw)))

    def place_order(self, symbol: str, action: str, quantity: float, *,
                    idempotency_key: str | None = None, **kw: Any) -> dict[str, Any]:
        return dict(self.call(Api.place_order(symbol, action, quantity, idempotency_key, **kw)))

    def cancel_order(self, order_id: int) -> dict[str, Any]:
        return dict(self.call(Api.cancel_order(order_id)))

    def open_orders(self) -> list[dict[str, Any]]:
        return list(self.call(Api.open_orders()))

    def executions(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.call(Api.executions(**filters)))

    def positions(self) -> list[dict[str, Any]]:
        return list(self.call(Api.positions()))
