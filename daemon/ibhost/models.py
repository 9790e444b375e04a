"""The answers of connector.sock, declared once as typed models (msgspec ``Struct``s).

The connector builds its answers as these models and encodes them (``encode``);
``ConnectorClient`` decodes them back into the same models (``decode``), which
checks every field's type and refuses a field the model does not declare; the
gateway's OpenAPI document takes its answer schemas from them (``schemas``), so
the schema /v1/ publishes and the bytes it relays are the same declaration.

msgspec was chosen by measurement (docs/models-measurement.md): it adds about
1.2 MiB and 10 ms to a program's start (pydantic v2: 9.4 MiB and 60 ms, in four
programs and every ``ibhost ctl``), and decodes a year of typed bars faster than
an untyped ``json.loads``. The large historical answers keep being written by the
connector column by column with orjson and relayed as bytes; ``HistoricalColumns``
declares their shape for the client and the OpenAPI document.

Naming follows IB's own (camelCase), as every answer always has. A field that IB
leaves unset is ``None`` (null), never IB's sentinel (1.797e308, -1 for an empty
price); a model's field with a default may be absent in what it decodes.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec


class Model(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An answer: keyword fields, and no field that is not declared."""


# --- contracts ---------------------------------------------------------------------


class ContractRef(Model, kw_only=True):
    """The contract fields every answer about a position, order or fill carries."""
    conId: int
    symbol: str
    secType: str
    currency: str | None = None
    localSymbol: str | None = None
    right: str | None = None
    strike: float | None = None
    lastTradeDateOrContractMonth: str | None = None
    multiplier: float | None = None


class ContractDetails(Model, kw_only=True):
    """One contract as IB describes it (reqContractDetails), as IB spells each field
    (an unset string is "", an unset strike 0)."""
    conId: int
    symbol: str
    secType: str
    exchange: str
    primaryExchange: str
    currency: str
    localSymbol: str
    tradingClass: str
    lastTradeDateOrContractMonth: str
    strike: float
    right: str
    multiplier: str
    longName: str
    timeZone: str
    tradingHours: str
    liquidHours: str
    minTick: float
    validExchanges: str
    industry: str
    category: str


class Validated(ContractDetails, kw_only=True):
    """``/v1/data/validate``: the contract's details, valid."""
    success: bool
    valid: bool


class Underlying(Model, kw_only=True):
    conId: int
    symbol: str
    secType: str


class OptionChainEntry(Model, kw_only=True):
    """One exchange's option parameters (reqSecDefOptParams)."""
    exchange: str
    tradingClass: str
    multiplier: str
    expirations: list[str]
    strikes: list[float]


class OptionChain(Model, kw_only=True):
    underlying: Underlying
    chains: list[OptionChainEntry]


# --- market data -------------------------------------------------------------------


class Greeks(Model, kw_only=True):
    """An option computation: null where IB has not computed a value."""
    impliedVol: float | None = None
    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None
    optPrice: float | None = None
    undPrice: float | None = None


class Quote(Model, kw_only=True):
    """A market-data snapshot (or the newest state of a held subscription)."""
    conId: int | None
    symbol: str | None
    time: str | None = None
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    bidSize: float | None = None
    askSize: float | None = None
    lastSize: float | None = None
    volume: float | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    marketDataType: int
    delayed: bool
    greeks: Greeks | None = None
    impliedVolatility: float | None = None
    histVolatility: float | None = None
    callOpenInterest: int | None = None
    putOpenInterest: int | None = None
    callVolume: int | None = None
    putVolume: int | None = None


class HeldQuote(Quote, kw_only=True):
    """A quote subscription held over connector.sock (``POST /subscriptions``)."""
    key: str
    resubscribed: int = 0


class HeadTimestamp(Model, kw_only=True):
    symbol: str
    whatToShow: str
    headTimestamp: str


class Bar(Model, kw_only=True):
    timestamp: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float | None = None
    count: int | None = None


class BarColumns(Model, kw_only=True):
    timestamp: list[str]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    wap: list[float | None]
    count: list[int | None]


class HistoricalColumns(Model, kw_only=True):
    """``POST /historical`` with ``"columns": true``: one list per column."""
    success: bool
    conId: int | None = None
    symbol: str | None = None
    barSize: str | None = None
    whatToShow: str | None = None
    useRTH: bool | None = None
    requests: int | None = None
    count: int
    columns: list[str]
    data: BarColumns


# --- orders and account ------------------------------------------------------------


class OrderLogEntry(Model, kw_only=True):
    time: str
    status: str
    message: str
    errorCode: int


class Order(ContractRef, kw_only=True):
    """An order as IB last reported it (its status kept current by IB's pushes)."""
    orderId: int
    permId: int | None = None
    clientId: int | None = None
    exchange: str | None = None
    account: str | None = None
    action: str
    quantity: float
    orderType: str
    limitPrice: float | None = None
    stopPrice: float | None = None
    tif: str | None = None
    orderRef: str | None = None
    status: str
    filled: float | None = None
    remaining: float | None = None
    avgFillPrice: float | None = None
    log: list[OrderLogEntry] = []


class PlacedOrder(Order, kw_only=True):
    """The answer to placing an order: ``duplicate`` when an order with the same
    ``orderRef`` was already working (and no new one was placed)."""
    duplicate: bool


class Execution(ContractRef, kw_only=True):
    """One fill, with its commission report once IB sent it."""
    execId: str
    time: str
    side: str
    shares: float
    price: float
    avgPrice: float | None = None
    cumQty: float | None = None
    orderId: int
    permId: int | None = None
    clientId: int | None = None
    orderRef: str | None = None
    exchange: str | None = None
    commission: float | None = None
    realizedPNL: float | None = None


class Position(ContractRef, kw_only=True):
    account: str
    position: float
    avgCost: float | None = None
    longName: str | None = None


class PortfolioItem(ContractRef, kw_only=True):
    account: str
    position: float
    marketPrice: float | None = None
    marketValue: float | None = None
    averageCost: float | None = None
    unrealizedPNL: float | None = None
    realizedPNL: float | None = None


class AccountValue(Model, kw_only=True):
    """One tag of the account summary: a number where IB's value is one."""
    account: str
    tag: str
    value: float | str
    currency: str


class Pnl(Model, kw_only=True, omit_defaults=True):
    """The account's P&L (reqPnL), or one position's (reqPnLSingle) with ``conId``,
    ``position`` and ``value`` (absent from an account's)."""
    account: str
    modelCode: str
    dailyPnL: float | None
    unrealizedPnL: float | None
    realizedPnL: float | None
    conId: int | None = None
    position: float | None = None
    value: float | None = None


# --- encoding, decoding, schemas ---------------------------------------------------

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(obj: Any) -> bytes:
    """JSON bytes of a model, a list of them, or plain JSON values."""
    return _encoder.encode(obj)


def decode(raw: bytes, kind: type[T]) -> T:
    """``raw`` as ``kind`` (a model, or ``list[Model]``); ``msgspec.ValidationError``
    names the field and the problem when the bytes do not match the declaration."""
    dec = _decoders.get(kind)
    if dec is None:
        dec = _decoders[kind] = msgspec.json.Decoder(kind)
    result: T = dec.decode(raw)
    return result


def plain(obj: Any) -> Any:
    """A model as plain dicts and lists (for an error's extra fields, a journal)."""
    return msgspec.to_builtins(obj)


# the answers the OpenAPI document names (components/schemas)
ANSWERS: tuple[type[Model], ...] = (
    ContractDetails, Validated, OptionChain, Quote, HeldQuote, HeadTimestamp, Bar,
    HistoricalColumns, Order, PlacedOrder, Execution, Position, PortfolioItem, AccountValue,
    Pnl)


def schemas(ref_template: str = "#/components/schemas/{name}") -> dict[str, Any]:
    """JSON Schema for every model in ``ANSWERS`` (and the ones they hold), by name."""
    _, components = msgspec.json.schema_components(ANSWERS, ref_template=ref_template)
    return components
