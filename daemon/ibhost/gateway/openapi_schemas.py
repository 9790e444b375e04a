"""The schemas of the gateway's OpenAPI document: building blocks, the request bodies
(with the rules JSON Schema can state, schema_rules), each family's error shape, and
the answers, generated from ibhost.models where the connector's answer is relayed."""

from __future__ import annotations

from typing import Any

from .. import asks, asks_families, fields, models
from ..errors import CODES
from ..fields import null
from ..validate import TIMEOUT_MAX, TIMEOUT_MIN

# --- building blocks -------------------------------------------------------------------

STR: dict[str, Any] = {"type": "string"}
NUM: dict[str, Any] = {"type": "number"}
INT: dict[str, Any] = {"type": "integer"}
BOOL: dict[str, Any] = {"type": "boolean"}
OBJ: dict[str, Any] = {"type": "object"}
ANY: dict[str, Any] = {}


def obj(required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def arr(items: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **kw}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


# the building blocks the requests are declared with (ibhost.asks, ibhost.fields)
SYMBOL, TEXT, CONID = asks.SYMBOL, asks.TEXT, asks.CON_ID
SEC_TYPES = list(asks.SEC_TYPES)
QBOOL = fields.QUERY_BOOL  # validate.bool_word's words, as a query gives them
PATH_SYMBOL = {"type": "string", "minLength": 1, "maxLength": 24,
               "pattern": "^[A-Za-z0-9][A-Za-z0-9.-]*$", "example": "AAPL"}
TIMEOUT = {"type": "number", "minimum": TIMEOUT_MIN, "maximum": TIMEOUT_MAX,
           "description": "seconds this request may take (at most gateway.connector_timeout)"}

# the request bodies ibhost.asks declares (the gateway and the connector read them so)
CONTRACT_FIELDS: dict[str, Any] = asks.ContractSpec.properties()  # null or absent: default
NAMED = asks.ContractSpec.RULES[0]  # one of symbol, conId or localSymbol names it
CONTRACT = {"type": "object", "properties": CONTRACT_FIELDS, "allOf": [NAMED]}
STOCK_ONLY = {"type": "object", "required": ["symbol"],
              "properties": {"symbol": SYMBOL,
                             "secType": {"type": "string", "enum": SEC_TYPES},
                             "exchange": TEXT, "currency": TEXT}}

ERROR_BODY = obj(
    ("code", "message"),
    # the catalogue's codes (one list: errors.CODES); aiohttp's own 404, 405 and 413
    # are answered with catalogue codes too (errors.code_for_http_status)
    code={"type": "string", "enum": [*CODES]},
    message=STR, field=STR, ib_code=INT, guard=STR)
ERROR = obj(("error",), error=ERROR_BODY)
# the bridge's {"error": "<text>"}, with ibhost's code and field beside it
BRIDGE_ERROR = obj(("error",), error=STR, code=STR, message=STR, field=STR, reason=STR)
# FastAPI's 422 {"detail": [...]} (or a text detail), with ibhost's error beside it
KTRDR_ERROR = {"anyOf": [obj(("detail",), detail={"anyOf": [arr(OBJ), STR]}), ERROR]}

# the answers ibhost.models declares (what the connector encodes and /v1/ relays)
ANSWERS = models.schemas()
BAR = ref("Bar")
HISTORICAL_COLUMNS = ref("HistoricalColumns")
HISTORICAL_RECORDS = obj(("bars",), success=BOOL, conId=INT, symbol=STR, barSize=STR,
                         whatToShow=STR, useRTH=BOOL, requests=INT, bars=arr(BAR),
                         count=INT, complete=BOOL)
VALIDATED = ref("Validated")
SNAPSHOT = ref("Quote")
ORDER_OUT = ref("Order")
PLACED = ref("PlacedOrder")
# the bridge's P&L answer (bridge_orders.pnl, bridge_orders.pnl_single)
BRIDGE_PNL = obj(("dailyPnL", "unrealizedPnL", "realizedPnL"), dailyPnL=null(NUM),
                 unrealizedPnL=null(NUM), realizedPnL=null(NUM), value=null(NUM),
                 marketValue=null(NUM), position=null(NUM))
HEALTH_STATUS = {"type": "string", "enum": ["ok", "degraded", "busy", "down", "maintenance"]}
V1_HEALTH = obj(("status", "reason"), status=HEALTH_STATUS, reason=STR,
                connector=null(OBJ), checkedAt=null(NUM), healthy=BOOL)
SHARED_HEALTH = obj(
    ("status", "healthy", "connected", "ready", "ibhostStatus"),
    status={"type": "string", "enum": ["ok", "degraded", "busy", "disconnected",
                                       "maintenance"]},
    healthy=BOOL, connected=BOOL, ready=BOOL, state=null(STR), reason=STR, service=STR,
    version=STR, timestamp=STR,
    ib_status=obj(("connected", "connection_count"), connected=BOOL, connection_count=INT),
    connection_info=OBJ, clientId=null(INT), host=STR, port=INT, clientType=STR,
    tradingMode={"type": "string", "enum": ["live", "paper"]}, lastHeartbeatAt=null(STR),
    lastIbErrorCode=null(INT), lastIbErrorMessage=null(STR), reconnectAttempts=null(INT),
    heartbeatFailures=null(INT), ibhostStatus=HEALTH_STATUS, connector=null(OBJ))
DETAILED = obj(("health",), gateway=OBJ, health=OBJ, connector=OBJ,
               programs=OBJ, watchdog=OBJ)
KTRDR_DETAILED = {"allOf": [obj(
    ("healthy", "ib_gateway_connected", "active_connections", "total_requests",
     "error_count", "uptime_seconds", "connection_pool_status"),
    healthy=BOOL, service=STR, timestamp=STR, ib_gateway_connected=BOOL,
    active_connections=INT, total_requests=INT, error_count=INT, last_error=null(STR),
    uptime_seconds=NUM, connection_pool_status=OBJ), DETAILED]}
GAPFILL_STATUS = obj((), dataDir=STR, files=INT, interval=NUM, filesPerCycle=INT,
                     waitingFor=null(STR), lastScan=null(OBJ), nextScanAt=null(NUM),
                     perFile=OBJ)
IB_STATUS = obj(("success", "ib_connected", "status"), success=BOOL, ib_connected=BOOL,
                status=HEALTH_STATUS, reason=STR, state=null(STR), client_id=null(INT),
                farms=null(OBJ), competing_session=null(BOOL))
SYSTEM_STATUS = obj(("success", "programs", "trading_enabled"), success=BOOL,
                    programs=OBJ, trading_enabled=BOOL)

HISTORICAL = asks.Historical.schema()
ORDER = asks.Order.schema()
SNAPSHOT_REQUEST = asks.Snapshot.schema()

KTRDR_HISTORICAL = asks_families.KtrdrHistorical.schema()
KTRDR_VALIDATE = asks_families.KtrdrValidate.schema()
BRIDGE_OPTION = asks_families.BridgeOption.schema()
BRIDGE_HISTORICAL = asks_families.BridgeHistorical.schema()
BRIDGE_ORDER = asks_families.BridgeOrder.schema()
BRIDGE_CANCEL = asks_families.BridgeCancel.schema()
# what bridge_orders.place_order and bridge_orders.cancel_order answer
BRIDGE_PLACED = obj(("orderId", "status", "uid", "message"), orderId=INT, permId=null(INT),
                    status=STR, uid=STR, message=STR)
BRIDGE_CANCELLED = obj(("orderId", "status", "message"), orderId=INT, permId=null(INT),
                       status=STR, message=STR)
BRIDGE_QUOTE = obj(("symbol", "source"), symbol=STR, last=null(NUM), bid=null(NUM),
                   ask=null(NUM), high=null(NUM), low=null(NUM), volume=null(NUM),
                   close=null(NUM), source=STR)

BRIDGE_CHAIN = obj(("symbol", "expirations", "strikes"), symbol=STR, expirations=arr(STR),
                   strikes=arr(NUM), multiplier=STR, exchange=STR, currency=STR,
                   tradingClass=STR, underlyingConId=STR)
BRIDGE_OPTION_QUOTE = obj(("symbol", "source"), symbol=STR, bid=null(NUM), ask=null(NUM),
                          last=null(NUM), close=null(NUM), undPrice=null(NUM), source=STR)
BRIDGE_DIAG = obj(("timestamp", "uptimeSeconds", "ibConnected", "ready", "epoch", "diag",
                   "locks", "caches"), timestamp=STR, uptimeSeconds=INT, ibConnected=BOOL,
                  ready=BOOL, epoch=INT, diag=OBJ, locks=OBJ, caches=OBJ, version=STR)
BRIDGE_DIAG_LOGS = {**BRIDGE_DIAG, "required": [*BRIDGE_DIAG["required"], "logs"],
                    "properties": {**BRIDGE_DIAG["properties"], "logs": arr(obj(
                        ("time", "level", "logger", "message"), time=STR, level=STR,
                        logger=STR, message=STR))}}
BATCH_ERRORS = arr(obj(("item", "error"), item=STR, error=STR))

SCHEMAS = {"Contract": CONTRACT, "Error": ERROR, "BridgeError": BRIDGE_ERROR,
           "KtrdrError": KTRDR_ERROR, "HistoricalRequest": HISTORICAL,
           "OrderRequest": ORDER, "SnapshotRequest": SNAPSHOT_REQUEST,
           "KtrdrHistorical": KTRDR_HISTORICAL,
           "KtrdrValidate": KTRDR_VALIDATE, "BridgeOption": BRIDGE_OPTION,
           "BridgeHistorical": BRIDGE_HISTORICAL, "BridgeOrder": BRIDGE_ORDER,
           "BridgeCancel": BRIDGE_CANCEL, **ANSWERS,
           "BridgeQuote": BRIDGE_QUOTE}
ERRORS = {"ibhost": "Error", "ktrdr": "KtrdrError", "bridge": "BridgeError"}


def _param(name: str, schema: dict[str, Any], *, where: str = "query",
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _op(summary: str, ok: dict[str, Any] | None = None, *, body: str | None = None,
        params: list[dict[str, Any]] | None = None, key: str = "read",
        family: str = "ibhost", status: str = "200", extra: str = "",
        content: dict[str, Any] | None = None,
        also: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One operation: its success answer, the family's error shape for the rest."""
    ok_content = content or _json(ok if ok is not None else OBJ)
    responses: dict[str, Any] = {status: {"description": "OK", "content": ok_content}}
    for code, schema in (also or {}).items():
        responses[code] = {"description": schema.get("description", code),
                           "content": _json(schema)}
    responses["default"] = {"description": "error", "content": _json(ref(ERRORS[family]))}
    op: dict[str, Any] = {"summary": summary, "description": extra or summary,
                          "responses": responses}
    if key in ("bridge", "trading"):
        op["security"] = [{"apiKey": []}]
    if key == "bridge":
        op["description"] += " (X-API-KEY needed once a key is configured)"
    params = list(params or [])
    if key == "trading" and family == "ibhost":
        params.append(_param("Idempotency-Key", {"type": "string", "minLength": 1,
                                                 "maxLength": 128, "pattern": "^[!-~]+$"},
                             where="header"))
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": _json(ref(body))}
    return op
