"""The one client of connector.sock: a method per route (connector/api.py).

Every program that calls the connector (gateway, gap-filler, backfill, watchdog,
ctl, the benches) does it through ``ConnectorClient``, so each route's method and
path are written once, here. It imports only ``ipc`` and ``errors``: the gap-filler
and the watchdog, which stay light, load neither aiohttp nor ib_async through it.

Bodies and query parameters are the routes' JSON as the connector validates them;
answers are returned as the connector sends them (decoded JSON, or bytes to relay).
"""

from __future__ import annotations

import copy
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

from ..ipc import JOB_HEADER, IpcError, UnixClient, raw_line_batches

Json = dict[str, Any]
Rows = list[dict[str, Any]]
Params = Mapping[str, Any]

# client method -> (HTTP method, path) on connector.sock; tests/test_connector_client.py
# holds this equal to connector/api.py's route table
ROUTES: dict[str, tuple[str, str]] = {
    "health": ("GET", "/health"),
    "metrics": ("GET", "/metrics"),
    "status": ("GET", "/status"),
    "reconnect": ("POST", "/reconnect"),
    "historical": ("POST", "/historical"),
    "validate": ("POST", "/validate"),
    "head_timestamp": ("GET", "/head-timestamp"),
    "option_chain": ("GET", "/option-chain"),
    "snapshot": ("POST", "/snapshot"),
    "subscriptions": ("GET", "/subscriptions"),
    "subscribe": ("POST", "/subscriptions"),
    "unsubscribe": ("DELETE", "/subscriptions/{conId}"),
    "place_order": ("POST", "/orders"),
    "open_orders": ("GET", "/orders"),
    "order_by_ref": ("GET", "/orders/by-ref"),
    "cancel_order": ("DELETE", "/orders/{orderId}"),
    "executions": ("GET", "/executions"),
    "positions": ("GET", "/positions"),
    "portfolio": ("GET", "/portfolio"),
    "account_summary": ("GET", "/account-summary"),
    "pnl": ("GET", "/pnl"),
    "stream_batches": ("GET", "/stream"),
    "streams": ("GET", "/streams"),
    "hold_stream": ("POST", "/streams"),
    "release_stream": ("DELETE", "/streams/{key}"),
    "order_events": ("GET", "/order-events"),
}


class ConnectorClient:
    """connector.sock, one method per route, with the socket client's timeouts.

    ``for_caller`` gives a view for one caller's requests (the gateway's): held to
    its deadline, paced as its job (``ipc.JOB_HEADER``), answer headers seen, and
    transport failures turned into the caller's own error."""

    def __init__(self, path: str, *, connect_timeout: float = 2.0,
                 read_timeout: float = 30.0) -> None:
        self.ipc = UnixClient(path, connect_timeout=connect_timeout, read_timeout=read_timeout)
        self.deadline: float | None = None
        self.job: str | None = None
        self.on_answer: Callable[[Mapping[str, str]], None] | None = None
        self.on_failure: Callable[[IpcError], Exception] | None = None

    @property
    def path(self) -> str:
        return self.ipc.path

    def for_caller(self, *, deadline: float | None, job: str,
                   on_answer: Callable[[Mapping[str, str]], None] | None = None,
                   on_failure: Callable[[IpcError], Exception] | None = None
                   ) -> ConnectorClient:
        """This client (the same connections) for one caller's requests."""
        view = copy.copy(self)
        view.deadline, view.job = deadline, job
        view.on_answer, view.on_failure = on_answer, on_failure
        return view

    async def close(self) -> None:
        await self.ipc.close()

    # --- plumbing ----------------------------------------------------------------------

    def _headers(self) -> dict[str, str] | None:
        return None if self.job is None else {JOB_HEADER: self.job}

    def _failed(self, e: IpcError) -> Exception:
        return e if self.on_failure is None else self.on_failure(e)

    async def _json(self, method: str, path: str, *, body: Any = None,
                    params: Params | None = None, read_timeout: float | None = None) -> Any:
        answer: dict[str, str] | None = {} if self.on_answer is not None else None
        try:
            result = await self.ipc.request(
                method, path, json_body=body, params=dict(params) if params else None,
                read_timeout=read_timeout, deadline=self.deadline, headers=self._headers(),
                answer_headers=answer)
        except IpcError as e:
            raise self._failed(e) from None
        if self.on_answer is not None and answer is not None:
            self.on_answer(answer)
        return result

    # --- the connection ----------------------------------------------------------------

    async def health(self, *, read_timeout: float | None = None) -> Json:
        """The connection's health (always 200 while the connector runs)."""
        result: Json = await self._json("GET", "/health", read_timeout=read_timeout)
        return result

    async def status(self, *, read_timeout: float | None = None) -> Json:
        """Every diagnostic the connector keeps."""
        result: Json = await self._json("GET", "/status", read_timeout=read_timeout)
        return result

    async def metrics(self, *, read_timeout: float | None = None) -> str:
        """The connector's Prometheus exposition."""
        try:
            return await self.ipc.request_text("GET", "/metrics", read_timeout=read_timeout)
        except IpcError as e:
            raise self._failed(e) from None

    async def reconnect(self, reason: str) -> Json:
        """Drop the connection and connect again now."""
        result: Json = await self._json("POST", "/reconnect", body={"reason": reason})
        return result

    # --- market data -------------------------------------------------------------------

    async def historical(self, body: Json) -> Json:
        """Bars for one contract and range, decoded."""
        result: Json = await self._json("POST", "/historical", body=body)
        return result

    async def historical_bytes(self, body: Json) -> bytes:
        """Bars as the connector wrote them, to relay without parsing."""
        try:
            return await self.ipc.request_bytes("POST", "/historical", json_body=body,
                                                deadline=self.deadline,
                                                headers=self._headers())
        except IpcError as e:
            raise self._failed(e) from None

    async def historical_lines(self, body: Json) -> AsyncGenerator[Json]:
        """Bars streamed (``"stream": true``): each NDJSON line decoded, as it comes."""
        lines = self.ipc.lines("POST", "/historical", json_body={**body, "stream": True},
                               deadline=self.deadline, headers=self._headers())
        try:
            try:
                async for line in lines:
                    yield line
            except IpcError as e:
                raise self._failed(e) from None
        finally:
            await lines.aclose()

    async def validate(self, spec: Json, *, params: Params | None = None) -> Json:
        """The contract's details, or not_found / ambiguous."""
        result: Json = await self._json("POST", "/validate", body=spec, params=params)
        return result

    async def head_timestamp(self, params: Params) -> Json:
        result: Json = await self._json("GET", "/head-timestamp", params=params)
        return result

    async def option_chain(self, params: Params) -> Json:
        result: Json = await self._json("GET", "/option-chain", params=params)
        return result

    async def snapshot(self, body: Json) -> Json:
        result: Json = await self._json("POST", "/snapshot", body=body)
        return result

    # --- held subscriptions ------------------------------------------------------------

    async def subscriptions(self) -> Rows:
        result: Rows = await self._json("GET", "/subscriptions")
        return result

    async def subscribe(self, body: Json) -> Json:
        result: Json = await self._json("POST", "/subscriptions", body=body)
        return result

    async def unsubscribe(self, con_id: int | str) -> Json:
        result: Json = await self._json("DELETE", f"/subscriptions/{con_id}")
        return result

    # --- orders and account ------------------------------------------------------------

    async def place_order(self, body: Json) -> Json:
        result: Json = await self._json("POST", "/orders", body=body)
        return result

    async def open_orders(self, params: Params | None = None) -> Rows:
        result: Rows = await self._json("GET", "/orders", params=params)
        return result

    async def order_by_ref(self, params: Params) -> Json:
        result: Json = await self._json("GET", "/orders/by-ref", params=params)
        return result

    async def cancel_order(self, order_id: int | str) -> Json:
        result: Json = await self._json("DELETE", f"/orders/{order_id}")
        return result

    async def executions(self, params: Params | None = None) -> Rows:
        result: Rows = await self._json("GET", "/executions", params=params)
        return result

    async def positions(self) -> Rows:
        result: Rows = await self._json("GET", "/positions")
        return result

    async def portfolio(self) -> Rows:
        result: Rows = await self._json("GET", "/portfolio")
        return result

    async def account_summary(self) -> Rows:
        result: Rows = await self._json("GET", "/account-summary")
        return result

    async def pnl(self, params: Params | None = None) -> Json:
        result: Json = await self._json("GET", "/pnl", params=params)
        return result

    # --- live streams ------------------------------------------------------------------

    async def stream_batches(self, since: int = 0) -> AsyncGenerator[list[bytes]]:
        """The stream channel (``GET /stream``): each read's NDJSON lines, undecoded,
        for as long as it stays open; journalled order events after ``since`` first."""
        url = f"/stream?since={since}" if since else "/stream"
        try:
            async for lines in raw_line_batches(self.ipc, url, headers=self._headers()):
                yield lines
        except IpcError as e:
            raise self._failed(e) from None

    async def streams(self) -> Json:
        result: Json = await self._json("GET", "/streams")
        return result

    async def hold_stream(self, channel: str, spec: Json) -> Json:
        result: Json = await self._json("POST", "/streams", body={**spec, "channel": channel})
        return result

    async def release_stream(self, channel: str, key: str) -> Json:
        result: Json = await self._json("DELETE", f"/streams/{urllib.parse.quote(key, safe='')}",
                                        params={"channel": channel})
        return result

    async def order_events(self, since: int, limit: int = 1000) -> bytes:
        """The journal's order events after ``since``: ``{firstSeq, seq, events}``."""
        try:
            return await self.ipc.request_bytes(
                "GET", "/order-events", params={"since": since, "limit": limit},
                deadline=self.deadline, headers=self._headers())
        except IpcError as e:
            raise self._failed(e) from None
