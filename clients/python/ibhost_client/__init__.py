"""Python client for the ibhost gateway, for backends in containers.

Installable on its own (``pip install ./clients/python``, distribution
``ibhost-client``: aiohttp only; ``[pandas]`` for the DataFrame answers), and as
``ibhost.client`` inside the daemon's package.

    from ibhost_client import AsyncIBHostClient    # or: from ibhost.client import ...
    async with AsyncIBHostClient() as ib:          # IB_HOST_SERVICE_URL or localhost:5001
        df = await ib.fetch_historical_data("AAPL", "1h", start, end)

``IBHostClient`` is the same API, synchronous (standard library only).

Failures: 503/504 and connection errors are retried with exponential backoff;
4xx never; an order without an idempotency key never (it could be placed twice).
A circuit breaker fails fast while the host is down and lets one probe through
after ``breaker_reset`` seconds to close again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_URL = "http://localhost:5001"


def _pandas() -> Any:
    """pandas, for the answers that are DataFrames (``pip install ibhost-client[pandas]``);
    the rest of the client does without it."""
    try:
        import pandas
    except ImportError:
        raise ImportError("this answer is a pandas DataFrame: pip install "
                          "'ibhost-client[pandas]' (or pandas)") from None
    return pandas
RETRY_STATUSES = (502, 503, 504)


def use_host_service() -> bool:
    """``USE_IB_HOST_SERVICE`` as existing setups read it (default: true)."""
    return os.environ.get("USE_IB_HOST_SERVICE", "true").strip().lower() in (
        "1", "true", "yes", "on")


def service_url() -> str:
    return os.environ.get("IB_HOST_SERVICE_URL", DEFAULT_URL).rstrip("/")


class IBHostError(Exception):
    """An error answer from the gateway (or no answer at all: status 0)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 ib_code: int | None = None, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.ib_code = ib_code
        self.body = body or {}


class CircuitOpenError(IBHostError):
    def __init__(self, retry_in: float) -> None:
        super().__init__(0, "circuit_open", f"the host service is failing; next probe in "
                                            f"{retry_in:.1f}s")
        self.retry_in = retry_in


class CircuitBreaker:
    """closed -> open after ``threshold`` failures in a row -> half-open after ``reset``."""

    def __init__(self, threshold: int = 5, reset: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.reset = reset
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.reset else "open"

    def before(self) -> None:
        st = self.state
        if st == "open" or (st == "half_open" and self._probing):
            assert self.opened_at is not None
            raise CircuitOpenError(max(0.0, self.reset - (self.clock() - self.opened_at)))
        if st == "half_open":
            self._probing = True

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._probing = False

    def failure(self) -> None:
        self.failures += 1
        self._probing = False
        if self.state == "half_open" or self.failures >= self.threshold:
            self.opened_at = self.clock()


def _error_from(status: int, text: str) -> IBHostError:
    try:
        data = json.loads(text)
        err = data.get("error", {})
    except (json.JSONDecodeError, AttributeError):
        data, err = {}, {}
    return IBHostError(status, err.get("code", "http_error"), err.get("message", text[:200]),
                       err.get("field"), err.get("ib_code"), data if isinstance(data, dict)
                       else {})


def _iso(t: dt.datetime | dt.date | str | None) -> str | None:
    if t is None or isinstance(t, str):
        return t
    if isinstance(t, dt.datetime):
        return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).isoformat()
    return t.isoformat()


def bars_frame(result: dict[str, Any]) -> pd.DataFrame:
    """Columnar historical answer -> DataFrame indexed by UTC timestamp."""
    pd = _pandas()
    data = result.get("data", {})
    df = pd.DataFrame({c: data.get(c, []) for c in ("open", "high", "low", "close", "volume")})
    df.index = pd.DatetimeIndex(pd.to_datetime(data.get("timestamp", []), utc=True),
                                name="timestamp")
    return df


def _utc_ts(x: Any) -> pd.Timestamp:
    pd = _pandas()
    t = pd.Timestamp(x)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


class Progress:
    """A one-line progress bar for long downloads (on a terminal, or any stream given).

    The fraction is how far the bars received reach into the requested range: the
    answer streams in time order, so that is how much of the range is done."""

    def __init__(self, out: Any, start: Any, end: Any, width: int = 30) -> None:
        pd = _pandas()
        self.out = out
        t0 = _utc_ts(start) if start is not None else pd.Timestamp(0, tz="UTC")
        t1 = _utc_ts(end) if end is not None else pd.Timestamp.now(tz="UTC")
        self.t0, self.t1 = t0.timestamp(), max(t1.timestamp(), t0.timestamp() + 1)
        self.width = width
        self.rows = 0
        self._shown = -1.0

    def feed(self, lines: list[str]) -> None:
        self.rows += len(lines)
        if lines:
            self.show(_utc_ts(lines[-1].split(",", 1)[0]).timestamp())

    def show(self, t: float, force: bool = False) -> None:
        frac = min(1.0, max(0.0, (t - self.t0) / (self.t1 - self.t0)))
        if not force and frac - self._shown < 0.005:
            return
        self._shown = frac
        done = int(frac * self.width)
        self.out.write(f"\r[{'#' * done}{'.' * (self.width - done)}] {frac:4.0%} "
                       f"{self.rows:,} bars")
        self.out.flush()

    def finish(self) -> None:
        self.show(self.t1, force=True)
        self.out.write("\n")
        self.out.flush()


def _progress_out(progress: Any) -> Any:
    """None: a bar on stderr when it is a terminal; True/False; or a stream to write to."""
    import sys

    if progress is None:
        return sys.stderr if sys.stderr.isatty() else None
    if progress is True:
        return sys.stderr
    return progress or None


def csv_frame(text: str) -> pd.DataFrame:
    """CSV historical answer -> the same DataFrame as ``bars_frame``."""
    pd = _pandas()
    import io

    df = pd.read_csv(io.StringIO(text))
    out = df[["open", "high", "low", "close", "volume"]].copy()
    out.index = pd.DatetimeIndex(pd.to_datetime(df["timestamp"], utc=True), name="timestamp")
    return out


class _CsvLines:
    """Split streamed CSV bytes into complete lines, feeding a progress bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.parts: list[str] = []
        self._tail = ""
        self._header = True

    def feed(self, data: bytes) -> None:
        text = self._tail + data.decode()
        *lines, self._tail = text.split("\n")
        self.parts += [ln + "\n" for ln in lines]
        if self._header and lines:
            self._header = False
            lines = lines[1:]
        self.progress.feed([ln for ln in lines if ln])

    def text(self) -> str:
        self.progress.finish()
        return "".join(self.parts) + self._tail


def _hist_body(symbol: str, timeframe: str, start: Any, end: Any, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"symbol": symbol, "start": _iso(start), "end": _iso(end), **kw}
    body["barSize" if " " in timeframe else "timeframe"] = timeframe
    return {k: v for k, v in body.items() if v is not None}


@dataclass(frozen=True)
class Call:
    """One API call: what to send and how to shape the answer."""

    method: str
    path: str
    body: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    shape: Callable[[Any], Any] = lambda x: x


def _head_ts(r: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(r["headTimestamp"])


class Api:
    """Every gateway call, described once; both clients execute these."""

    @staticmethod
    def health() -> Call:
        return Call("GET", "/v1/health")

    @staticmethod
    def historical(symbol: str, timeframe: str, start: Any, end: Any, **kw: Any) -> Call:
        return Call("POST", "/v1/data/historical", _hist_body(symbol, timeframe, start, end, **kw),
                    shape=bars_frame)

    @staticmethod
    def validate(symbol: str, **kw: Any) -> Call:
        return Call("POST", "/v1/data/validate", {"symbol": symbol, **kw})

    @staticmethod
    def head_timestamp(symbol: str, **kw: Any) -> Call:
        return Call("GET", "/v1/data/head-timestamp", params={"symbol": symbol, **kw},
                    shape=_head_ts)

    @staticmethod
    def option_chain(symbol: str, **kw: Any) -> Call:
        return Call("GET", "/v1/options/chain", params={"symbol": symbol, **kw})

    @staticmethod
    def snapshot(symbol: str, **kw: Any) -> Call:
        return Call("POST", "/v1/market/snapshot", {"symbol": symbol, **kw})

    @staticmethod
    def place_order(symbol: str, action: str, quantity: float, key: str | None,
                    **kw: Any) -> Call:
        return Call("POST", "/v1/orders", {"symbol": symbol, "action": action,
                                        "quantity": quantity, **kw},
                    headers={"Idempotency-Key": key} if key else {})

    @staticmethod
    def cancel_order(order_id: int) -> Call:
        return Call("DELETE", f"/v1/orders/{int(order_id)}")

    @staticmethod
    def open_orders() -> Call:
        return Call("GET", "/v1/orders")

    @staticmethod
    def executions(**filters: Any) -> Call:
        return Call("GET", "/v1/executions", params=filters)

    @staticmethod
    def positions() -> Call:
        return Call("GET", "/v1/positions")


def _health_of(e: IBHostError) -> dict[str, Any]:
    return e.body or {"status": "down", "reason": e.message}


class _Policy:
    def __init__(self, retries: int, backoff: float, max_backoff: float,
                 breaker: CircuitBreaker) -> None:
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.breaker = breaker

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * (2 ** attempt))
        return base * (0.5 + random.random() / 2)

    @staticmethod
    def retryable(method: str, path: str, headers: dict[str, str]) -> bool:
        if method == "POST" and path.startswith(("/v1/orders", "/orders", "/order")):
            return "Idempotency-Key" in headers
        return method != "DELETE"


class _Sse:
    """Server-Sent Events, line by line: an event dict when one is complete."""

    def __init__(self) -> None:
        self.event, self.data = "message", ""
        self.last_id: int | None = None

    def feed(self, line: str) -> dict[str, Any] | None:
        line = line.rstrip("\r\n")
        if line == "":
            if not self.data:
                return None
            ev: dict[str, Any] = json.loads(self.data)
            self.event, self.data = "message", ""
            return ev
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data += value
        elif name == "id" and value.isdigit():
            self.last_id = int(value)
        return None


def _stream_params(quotes: Any, bars: Any, bar_size: str, orders: bool,
                   **extra: Any) -> dict[str, str]:
    def names(x: Any) -> str:
        return ",".join([x] if isinstance(x, str) else list(x))

    p = {"quotes": names(quotes), "bars": names(bars), "barSize": bar_size,
         "orders": "true" if orders else ""}
    p.update({k: str(v) for k, v in extra.items() if v is not None})
    return {k: v for k, v in p.items() if v}


class _Resume:
    """Reconnects a stream: backoff after a failure, reset once events flow again;
    order events resume after the last sequence number seen."""

    def __init__(self, policy: _Policy, since: int | None) -> None:
        self.policy = policy
        self.since = since
        self.attempt = 0

    def headers(self, api_key: str | None) -> dict[str, str]:
        h = {"Accept": "text/event-stream"}
        if api_key:
            h["X-API-Key"] = api_key
        if self.since is not None:
            h["Last-Event-ID"] = str(self.since)
        return h

    def seen(self, ev: dict[str, Any]) -> None:
        self.attempt = 0
        if ev.get("type") == "order" and isinstance(ev.get("seq"), int):
            self.since = ev["seq"]

    def delay(self) -> float:
        d = self.policy.delay(self.attempt)
        self.attempt += 1
        return d


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
