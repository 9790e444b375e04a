"""The one client of connector.sock: a method per route (connector/api.py).

Every program that calls the connector (gateway, gap-filler, backfill, watchdog,
ctl, the benches) does it through ``ConnectorClient``, so each route's method and
path are written once, here. It imports only ``ipc`` and ``errors``: the gap-filler
and the watchdog, which stay light, load neither aiohttp nor ib_async through it.

Bodies and query parameters are the routes' JSON as the connector validates them.
Answers come back as the typed models the connector built them from
(``ibhost.models``: a field of the wrong type, or one the model does not declare, is
an error here, not a surprise three calls later), or as the connector's bytes, to
relay without decoding (``relay``).
"""

from __future__ import annotations

import copy
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, TypeVar

import msgspec

from .. import models
from ..ipc import JOB_HEADER, IpcError
from ..ipc.client import UnixClient, raw_line_batches

Json = dict[str, Any]
Rows = list[dict[str, Any]]
Params = Mapping[str, Any]
T = TypeVar("T")

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


class _EventSeqs(msgspec.Struct):
    """The head line of ``GET /order-events?format=ndjson``: what the gateway reads."""

    seqs: list[int]


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

    async def _bytes(self, method: str, path: str, *, body: Any = None,
                     params: Params | None = None) -> bytes:
        answer: dict[str, str] | None = {} if self.on_answer is not None else None
        try:
            raw = await self.ipc.request_bytes(
                method, path, json_body=body, params=dict(params) if params else None,
                deadline=self.deadline, headers=self._headers(), answer_headers=answer)
        except IpcError as e:
            raise self._failed(e) from None
        if self.on_answer is not None and answer is not None:
            self.on_answer(answer)
        return raw

    async def _typed(self, kind: type[T], method: str, path: str, *, body: Any = None,
                     params: Params | None = None) -> T:
        raw = await self._bytes(method, path, body=body, params=params)
        try:
            return models.decode(raw, kind)
        except msgspec.ValidationError as e:  # connector and caller disagree: a bug
            raise self._failed(IpcError(self.path, f"{method} {path}: the answer does not "
                                                   f"match its model: {e}")) from None

    async def relay(self, name: str, *, params: Params | None = None, body: Any = None,
                    **path_args: Any) -> bytes:
        """The answer of the route behind method ``name`` (see ``ROUTES``) as the
        connector encoded it, to send on without decoding it."""
        method, path = ROUTES[name]
        if path_args:
            path = path.format(**{k: urllib.parse.quote(str(v), safe="")
                                  for k, v in path_args.items()})
        return await self._bytes(method, path, body=body, params=params)

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

    async def validate(self, spec: Json, *, params: Params | None = None
                       ) -> models.ContractDetails:
        """The contract's details, or not_found / ambiguous."""
        return await self._typed(models.ContractDetails, "POST", "/validate", body=spec,
                                 params=params)

    async def head_timestamp(self, params: Params) -> models.HeadTimestamp:
        return await self._typed(models.HeadTimestamp, "GET", "/head-timestamp",
                                 params=params)

    async def option_chain(self, params: Params) -> models.OptionChain:
        return await self._typed(models.OptionChain, "GET", "/option-chain", params=params)

    async def snapshot(self, body: Json) -> models.Quote:
        return await self._typed(models.Quote, "POST", "/snapshot", body=body)

    # --- held subscriptions ------------------------------------------------------------

    async def subscriptions(self) -> list[models.HeldQuote]:
        return await self._typed(list[models.HeldQuote], "GET", "/subscriptions")

    async def subscribe(self, body: Json) -> models.HeldQuote:
        return await self._typed(models.HeldQuote, "POST", "/subscriptions", body=body)

    async def unsubscribe(self, con_id: int | str) -> Json:
        result: Json = await self._json("DELETE", f"/subscriptions/{con_id}")
        return result

    # --- orders and account ------------------------------------------------------------

    async def place_order(self, body: Json) -> models.PlacedOrder:
        return await self._typed(models.PlacedOrder, "POST", "/orders", body=body)

    async def open_orders(self, params: Params | None = None) -> list[models.Order]:
        return await self._typed(list[models.Order], "GET", "/orders", params=params)

    async def order_by_ref(self, params: Params) -> models.Order:
        return await self._typed(models.Order, "GET", "/orders/by-ref", params=params)

    async def cancel_order(self, order_id: int | str) -> models.Order:
        return await self._typed(models.Order, "DELETE", f"/orders/{order_id}")

    async def executions(self, params: Params | None = None) -> list[models.Execution]:
        return await self._typed(list[models.Execution], "GET", "/executions", params=params)

    async def positions(self) -> list[models.Position]:
        return await self._typed(list[models.Position], "GET", "/positions")

    async def portfolio(self) -> list[models.PortfolioItem]:
        return await self._typed(list[models.PortfolioItem], "GET", "/portfolio")

    async def account_summary(self) -> list[models.AccountValue]:
        return await self._typed(list[models.AccountValue], "GET", "/account-summary")

    async def pnl(self, params: Params | None = None) -> models.Pnl:
        return await self._typed(models.Pnl, "GET", "/pnl", params=params)

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

    async def order_events(self, since: int, limit: int = 1000) -> list[tuple[int, bytes]]:
        """The journal's order events after ``since`` (at most ``limit``), each as its
        sequence number and its line, undecoded (to relay as it is)."""
        try:
            raw = await self.ipc.request_bytes(
                "GET", "/order-events",
                params={"since": since, "limit": limit, "format": "ndjson"},
                deadline=self.deadline, headers=self._headers())
        except IpcError as e:
            raise self._failed(e) from None
        head, *lines = raw.rstrip(b"\n").split(b"\n")
        seqs = msgspec.json.decode(head, type=_EventSeqs).seqs
        if len(seqs) != len(lines):
            raise IpcError(self.ipc.path, f"{len(lines)} order events, {len(seqs)} "
                           f"sequence numbers")
        return list(zip(seqs, lines, strict=True))
