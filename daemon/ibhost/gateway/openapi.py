"""The gateway's OpenAPI 3.1 description, and a self-contained docs page rendered from it.
The schemas it names are in openapi_schemas."""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from .. import __version__, asks, asks_families
from ..symbols import INSTRUMENT_TYPES
from .openapi_schemas import (
    BATCH_ERRORS,
    BOOL,
    BRIDGE_CANCELLED,
    BRIDGE_CHAIN,
    BRIDGE_DIAG,
    BRIDGE_DIAG_LOGS,
    BRIDGE_OPTION_QUOTE,
    BRIDGE_PLACED,
    BRIDGE_PNL,
    BRIDGE_QUOTE,
    CONID,
    DETAILED,
    GAPFILL_STATUS,
    HEALTH_STATUS,
    HISTORICAL_COLUMNS,
    HISTORICAL_RECORDS,
    IB_STATUS,
    INT,
    KTRDR_DETAILED,
    NUM,
    OBJ,
    ORDER_OUT,
    PATH_SYMBOL,
    PLACED,
    QBOOL,
    SCHEMAS,
    SEC_TYPES,
    SHARED_HEALTH,
    SNAPSHOT,
    STR,
    SYMBOL,
    SYSTEM_STATUS,
    TEXT,
    TIMEOUT,
    V1_HEALTH,
    VALIDATED,
    _json,
    _op,
    _param,
    arr,
    null,
    obj,
    ref,
)

__all__ = ["SCHEMAS", "SPEC", "TIMEOUT", "docs_handler", "render_docs", "spec_handler"]

STREAM_Q = [
    _param("quotes", {"type": "string", "description": "symbols, comma-separated"}),
    _param("bars", {"type": "string", "description": "symbols, comma-separated"}),
    _param("barSize", {"type": "string", "default": "1 min"}),
    _param("whatToShow", {"type": "string", "enum": ["TRADES", "MIDPOINT", "BID", "ASK"]}),
    _param("useRTH", {"type": "boolean"}),
    _param("secType", {"type": "string"}),
    _param("orders", {"type": "boolean", "description": "order events (needs a key)"}),
    _param("since", {"type": "integer", "minimum": 0}),
    _param("Last-Event-ID", {"type": "string", "pattern": "^[0-9]{1,18}$"}, where="header"),
]


def _contract_query(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [_param("symbol", SYMBOL, required=True),
            _param("secType", {"type": "string", "enum": SEC_TYPES}),
            _param("exchange", TEXT), _param("currency", TEXT), *extra]


CONNECT = _param("connect", QBOOL)
TIMEOUT_Q = _param("timeout", {"anyOf": [TIMEOUT, {"const": ""}]})
FORMAT = _param("format", {"type": "string", "enum": ["json", "records", "csv"]})
ACCOUNT_Q = [_param("account", TEXT), _param("model", TEXT)]
KTRDR_OK = dict(success=BOOL, error=null(STR))
KTRDR_IB_STATUS = obj(("success", "connection_pool", "status", "timestamp"),
                      success=BOOL, status=STR, timestamp=STR,
                      connection_pool=obj(("available_connections", "total_connections"),
                                          available_connections=INT, total_connections=INT,
                                          failed_connections=INT, host=STR, port=INT))
KTRDR_GAPFILL_STATUS = obj(("status", "gap_filler", "statistics"), status=STR,
                           gap_filler=obj(("running",), running=BOOL),
                           statistics=obj(("gaps_detected", "gaps_filled"),
                                          gaps_detected=INT, gaps_filled=INT,
                                          gaps_failed=INT,
                                          symbols_processed={"anyOf": [INT, arr(STR)]}))
KTRDR_FORCE_SCAN = obj(("status", "message", "result"), status=STR, message=STR,
                       result=obj(("success",), success=BOOL, stats=OBJ))
KTRDR_SYSTEM_STATUS = obj(("status", "health", "services", "summary"), status=STR,
                          health=STR, services=OBJ, summary=OBJ)
KTRDR_VALIDATION = obj(("success", "is_valid"), success=BOOL, is_valid=null(BOOL),
                       error_message=null(STR), contract_info=null(OBJ),
                       head_timestamps=null(OBJ), error=null(STR))
LIST = dict(count=INT)

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "ibhost gateway", "version": __version__,
             "description": "One healthy Interactive Brokers API connection, over HTTP."},
    "components": {
        "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        "schemas": SCHEMAS,
    },
    "paths": {
        "/": {"get": _op("service info: name, version, endpoints (KTRDR's keys too)",
                         obj(("service", "version", "endpoints"), service=STR, name=STR,
                             version=STR, status=STR, endpoints=arr(STR)))},
        "/ping": {"get": _op("liveness of the gateway itself (no IB, no connector call)",
                             obj(("status", "pong"), status=STR, pong=BOOL,
                                 timestamp=INT, time=NUM))},
        "/health": {"get": _op(
            "one health body for every client; always 200", SHARED_HEALTH, params=[CONNECT],
            family="bridge",
            extra="status ok / degraded / busy / disconnected; healthy, connected and ready "
            "are true only while IB is usable; ib_status (KTRDR), clientId, host, port, "
            "tradingMode (wheel-strat), ibhostStatus and connector (ibhost). connect=true "
            "asks the connector now; a connect that is not a boolean is a 400 in the "
            "bridge's error shape. For a failing status code use /readyz or /v1/health.")},
        "/livez": {"get": _op("200 while the gateway runs", obj(("status",), status=STR))},
        "/readyz": {"get": _op("200 while IB is usable (ok/degraded), else 503",
                               obj(("status", "ready"), status=HEALTH_STATUS, reason=STR,
                                   ready=BOOL),
                               also={"503": obj(("status", "ready"), status=HEALTH_STATUS,
                                                reason=STR, ready=BOOL)})},
        "/health/": {"get": _op(
            "KTRDR's HealthResponse: the service runs; ib_status says whether IB is usable",
            obj(("healthy", "service", "timestamp", "ib_status", "connection_info"),
                healthy=BOOL, service=STR, timestamp=STR,
                ib_status=obj(("connected", "connection_count"), connected=BOOL,
                              connection_count=INT),
                connection_info=OBJ, error=null(STR)), family="ktrdr")},
        "/health/detailed": {"get": _op(
            "KTRDR's detailed health fields, then ibhost's detail (with a key: the "
            "connector's diagnostics and the programs' status)", KTRDR_DETAILED,
            family="ktrdr")},
        "/v1/health": {"get": _op(
            "connection health: ok / degraded / down / busy, within 1 s", V1_HEALTH,
            params=[CONNECT], also={"503": V1_HEALTH},
            extra="connect=false (default) answers from the state the gateway polls "
            "every 0.5 s; connect=true asks the connector now (bounded by "
            "gateway.health_timeout). 200 for ok/degraded, 503 for down/busy.")},
        "/v1/health/detailed": {"get": _op(
            "all connector diagnostics, the programs' status (supervisord) and the "
            "watchdog's outage follow-up; without a key once keys are set: the status "
            "only", DETAILED)},
        "/v1/data/historical": {"post": _op(
            "historical bars (UTC)", body="HistoricalRequest",
            params=[FORMAT, TIMEOUT_Q],
            content={"application/json": {"schema": {"anyOf": [HISTORICAL_COLUMNS,
                                                               HISTORICAL_RECORDS]}},
                     "text/csv": {"schema": STR}},
            extra="format=json (columnar, default) | records | csv, or Accept: text/csv. "
            "Long ranges are chunked under IB's pacing rules and stitched. 400 also when "
            "start is not before end, when barSize and timeframe disagree, when a "
            "duration breaks IB's step-size rules for the bar size, and for TRADES on "
            "forex.")},
        "/v1/data/validate": {"post": _op("contract metadata, or 404 / 409 ambiguous",
                                          VALIDATED, body="Contract")},
        "/v1/data/head-timestamp": {"get": _op(
            "earliest available data", ref("HeadTimestamp"),
            params=asks.HeadTimestamp.parameters())},
        "/v1/options/chain": {"get": _op(
            "option expirations and strikes per exchange", ref("OptionChain"),
            params=asks.OptionChain.parameters())},
        "/v1/market/snapshot": {"post": _op(
            "bid/ask/last/volume; greeks, IV, HV, OI with genericTicks", SNAPSHOT,
            body="SnapshotRequest")},
        "/v1/orders": {
            "post": _op("place an order (trading must be enabled; X-API-Key required)",
                        PLACED, body="OrderRequest", key="trading", status="201",
                        also={"200": PLACED},
                        extra="Guards: trading.enabled, allowed secTypes, symbol "
                        "allow-list, no MKT on options, max quantity, max notional (403 "
                        "naming the guard). 400 when a LMT/STP price is missing or below "
                        "the contract's minimum tick. Idempotency-Key: a retry never "
                        "places a second order; it answers the first answer's status with "
                        "the order as IB knows it now (Idempotent-Replayed: true; "
                        "Idempotent-Stale: true when only the stored answer was at hand)."),
            "get": _op("open orders", arr(ORDER_OUT)),
        },
        "/v1/orders/{orderId}": {"delete": _op(
            "cancel an order", ORDER_OUT, key="trading",
            params=[_param("orderId", CONID, where="path")])},
        "/v1/executions": {"get": _op("fills", arr(ref("Execution")),
                                      params=asks.Executions.parameters())},
        "/v1/positions": {"get": _op("positions", arr(ref("Position")))},
        "/v1/portfolio": {"get": _op("portfolio: positions with market price, value, PnL",
                                     arr(ref("PortfolioItem")))},
        "/v1/account/summary": {"get": _op("account summary: every tag IB reports",
                                           arr(ref("AccountValue")))},
        "/v1/pnl": {"get": _op("daily, unrealized and realized PnL (conId: one position)",
                               ref("Pnl"), params=[*ACCOUNT_Q, _param("conId", {
                                   "type": "integer", "minimum": 0,
                                   "maximum": 2147483647, "description": "0: the account"})])},
        "/v1/stream": {"get": _op(
            "live events as Server-Sent Events", params=STREAM_Q, status="200",
            content={"text/event-stream": {"schema": {"type": "string"}}},
            extra="One event stream: quotes (conflated, the newest per contract), "
                  "live-updating bars (complete bars never dropped), status events "
                  "(stale / resumed with the gap) and, with orders=true and an API key, "
                  "order events whose SSE id is their sequence number: reconnect with "
                  "Last-Event-ID to get what was missed. 429 line_budget when the "
                  "market-data line budget is used up. See docs/streams.md.")},
        "/v1/stream/ws": {"get": _op(
            "live events over a WebSocket", status="101",
            content={"application/json": {"schema": OBJ}},
            extra="Send {op: subscribe, quotes: [...], bars: [...], orders: true, "
                  "since: N} and {op: unsubscribe, keys: [...]}; events arrive as JSON "
                  "text frames (one object, or an array of several). A browser origin "
                  "not in gateway.cors_origins is refused (403).")},
        "/status": {"get": _op(
            "a live status page for people", status="200",
            content={"text/html": {"schema": {"type": "string"}}},
            extra="One self-contained HTML page (no data in it) whose inline script "
                  "polls /health, /v1/system/system-status, /v1/streams, "
                  "/v1/gapfill/status and, with a key, /v1/health/detailed every "
                  "second. Its Content-Security-Policy allows only that script and "
                  "same-origin requests. See docs/gateway.md.")},
        "/v1/streams": {"get": _op("streams held at IB for consumers, and the "
                                   "market-data line budget", OBJ)},
        "/v1/system/ib-status": {"get": _op("IB connection status", IB_STATUS)},
        "/v1/system/system-status": {"get": _op("status of every program", SYSTEM_STATUS)},
        "/v1/gapfill/status": {"get": _op("the gap-filler: last and next scan, per file "
                                          "gaps found and filled, bars written, errors",
                                          GAPFILL_STATUS)},
        "/v1/gapfill/scan": {"post": _op("scan now (optionally {files: [...]}); answers what "
                                         "the scan did", OBJ, params=[TIMEOUT_Q])},
        # KTRDR's system pages (ktrdr/api/endpoints/system.py), KTRDR's keys first
        "/api/v1/system/gap-filler-status": {"get": _op(
            "KTRDR: the gap-filler's status", KTRDR_GAPFILL_STATUS, family="ktrdr")},
        "/api/v1/system/gap-filler/force-scan": {"post": _op(
            "KTRDR: scan now", KTRDR_FORCE_SCAN, params=[TIMEOUT_Q], family="ktrdr")},
        "/api/v1/system/ib-status": {"get": _op("KTRDR: IB connection status",
                                                KTRDR_IB_STATUS, family="ktrdr")},
        "/api/v1/system/system-status": {"get": _op("KTRDR: every service's status",
                                                    KTRDR_SYSTEM_STATUS, family="ktrdr")},
        "/api/v1/system/status": {"get": _op("KTRDR: the system's status as its ApiResponse "
                                             "{success, data, error}", OBJ, family="ktrdr")},
        "/api/v1/system/config": {"get": _op("KTRDR: the gateway's configuration as its "
                                             "ApiResponse; API keys masked", OBJ,
                                             family="ktrdr")},
        "/data/historical": {"post": _op(
            "KTRDR: bars as DataFrame.to_json(orient=index) text",
            obj(("success",), **KTRDR_OK, data=null(STR), rows=null(INT)),
            body="KtrdrHistorical", family="ktrdr",
            extra="200 {success, data, error, rows}; failures (also start not before end) "
            "are 200 success=false; invalid input 422 {detail}. end is inclusive.")},
        "/data/validate": {"post": _op("KTRDR: is_valid, contract_info, head_timestamps",
                                       KTRDR_VALIDATION, body="KtrdrValidate",
                                       family="ktrdr")},
        "/data/head-timestamp": {"get": _op(
            "KTRDR: earliest data as ISO text",
            obj(("success", "timestamp"), **KTRDR_OK, timestamp=null(STR)),
            family="ktrdr", params=[
                _param("symbol", SYMBOL, required=True),
                _param("timeframe", {"type": "string", "minLength": 1, "maxLength": 8,
                                     "pattern": "^[0-9]+[smhdwM]$"}, required=True),
                _param("instrument_type", {"type": "string",
                                           "enum": sorted(INSTRUMENT_TYPES)})])},
        "/data/symbol-info/{symbol}": {"get": _op(
            "KTRDR: validation with the 1h head timestamp", KTRDR_VALIDATION,
            family="ktrdr", params=[_param("symbol", SYMBOL, where="path")])},
        "/diag": {"get": _op("wheel-strat: connection diagnostics (no key)", BRIDGE_DIAG,
                             family="bridge")},
        "/diag/logs": {"get": _op(
            "wheel-strat: /diag with the gateway's recent log lines", BRIDGE_DIAG_LOGS,
            key="bridge", family="bridge", params=[_param("limit", {
                "type": "integer", "minimum": 0, "maximum": 2**31 - 1})])},
        "/market-data/{symbol}": {"get": _op(
            "wheel-strat: quote, realtime -> frozen -> delayed", BRIDGE_QUOTE, key="bridge",
            family="bridge", params=[_param("symbol", PATH_SYMBOL, where="path")])},
        "/market-data/batch": {"post": {**_op(
            "wheel-strat: quotes for {symbols: [...]}", obj(("results",),
                                                            results=arr(BRIDGE_QUOTE)),
            key="bridge", family="bridge"), "requestBody": {"required": True, "content": _json(
                obj((), symbols=null(arr({"type": "string", "minLength": 1,
                                          "maxLength": 24}, maxItems=100))))}}},
        "/option-chain/{symbol}": {"get": _op(
            "wheel-strat: expirations and strikes", BRIDGE_CHAIN,
            key="bridge", family="bridge",
            params=[_param("symbol", PATH_SYMBOL, where="path")])},
        "/option-chain/batch": {"post": {**_op(
            "wheel-strat: chains for {symbols: [...]}, each on its own",
            obj(("results", "errors"), results=arr(BRIDGE_CHAIN), errors=BATCH_ERRORS),
            key="bridge", family="bridge"), "requestBody": {"required": True, "content": _json(
                obj((), symbols=null(arr(PATH_SYMBOL, maxItems=100))))}}},
        "/option-quote": {"post": _op("wheel-strat: option quote with greeks",
                                      BRIDGE_OPTION_QUOTE,
                                      body="BridgeOption", key="bridge", family="bridge")},
        "/option-quote/batch": {"post": {**_op(
            "wheel-strat: quotes for {contracts: [{symbol, expiration, strike, right}]}, "
            "each on its own",
            obj(("results", "errors"), results=arr(BRIDGE_OPTION_QUOTE),
                errors=BATCH_ERRORS), key="bridge", family="bridge"),
            "requestBody": {"required": True, "content": _json(obj((), contracts=null(arr(
                {"$ref": "#/components/schemas/BridgeOption"}, maxItems=100))))}}},
        "/historical": {"post": _op("wheel-strat: bars {symbol, bars: [{date, ...}]}",
                                    obj(("symbol", "bars"), symbol=STR, bars=arr(obj(
                                        ("date",), date=STR, open=NUM, high=NUM, low=NUM,
                                        close=NUM, volume=NUM))),
                                    body="BridgeHistorical", key="bridge", family="bridge")},
        "/order": {"post": _op("wheel-strat: place an order (uid -> orderRef)", BRIDGE_PLACED,
                               body="BridgeOrder", key="trading", family="bridge",
                               extra="wheel-strat: place an order (uid -> orderRef); 400 "
                               "when a LMT price is missing or below the minimum tick")},
        "/order/cancel": {"post": _op("wheel-strat: cancel by orderId or permId",
                                      BRIDGE_CANCELLED,
                                      body="BridgeCancel", key="trading", family="bridge")},
        "/executions": {"get": _op("wheel-strat: {executions, count}",
                                   obj(("executions", "count"), executions=arr(OBJ), **LIST),
                                   params=asks_families.BridgeExecutions.parameters(),
                                   key="bridge", family="bridge")},
        "/orders": {"get": _op("wheel-strat: {orders, count}",
                               obj(("orders", "count"), orders=arr(OBJ), **LIST),
                               key="bridge", family="bridge")},
        "/positions": {"get": _op("wheel-strat: {positions, count}",
                                  obj(("positions", "count"), positions=arr(OBJ), **LIST),
                                  key="bridge", family="bridge")},
        "/portfolio": {"get": _op("wheel-strat: portfolio {positions, count}",
                                  obj(("positions", "count"), positions=arr(OBJ), **LIST),
                                  key="bridge", family="bridge")},
        "/account-summary": {"get": _op("wheel-strat: summary tags as numbers", OBJ,
                                        key="bridge", family="bridge")},
        "/pnl": {"get": _op("wheel-strat: account PnL", BRIDGE_PNL, params=ACCOUNT_Q,
                            key="bridge", family="bridge")},
        "/pnl-single": {"get": _op("wheel-strat: one position's PnL", BRIDGE_PNL,
                                   params=[_param("conId", CONID, required=True),
                                           *ACCOUNT_Q], key="bridge", family="bridge")},
        "/metrics": {"get": _op("Prometheus metrics of the whole tree",
                                content={"text/plain": {"schema": STR}})},
        "/openapi.json": {"get": _op("this document", OBJ)},
        "/docs": {"get": _op("human-readable API page", content={"text/html": {"schema": STR}})},
    },
}


async def spec_handler(request: web.Request) -> web.Response:
    return web.json_response(SPEC)


def render_docs() -> str:
    rows = []
    for path, ops in SPEC["paths"].items():
        for method, op in ops.items():
            params = ", ".join(p["name"] for p in op.get("parameters", []))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}"
                f"</code></td><td>{html.escape(op['description'])}"
                f"{'<br><em>body:</em> ' + ref if ref else ''}"
                f"{'<br><em>parameters:</em> ' + html.escape(params) if params else ''}"
                f"{'<br><strong>X-API-Key required</strong>' if op.get('security') else ''}"
                "</td></tr>")
    schemas = "".join(
        f"<h3>{name}</h3><pre>{html.escape(_schema_text(s))}</pre>"
        for name, s in SPEC["components"]["schemas"].items())
    return ("<!doctype html><html><head><meta charset='utf-8'><title>ibhost API</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
            "td{vertical-align:top;padding:4px 8px;border-bottom:1px solid #ddd}"
            "pre{background:#f6f6f6;padding:8px}</style></head><body>"
            f"<h1>ibhost gateway {__version__}</h1><p>{SPEC['info']['description']} "
            "Machine-readable: <a href='/openapi.json'>/openapi.json</a>. Errors are "
            "<code>{\"error\": {\"code\", \"message\", \"field\"?, \"ib_code\"?}}</code>.</p>"
            f"<table>{''.join(rows)}</table><h2>Schemas</h2>{schemas}</body></html>")


def _schema_text(schema: dict[str, Any]) -> str:
    import json

    return json.dumps(schema, indent=2)


async def docs_handler(request: web.Request) -> web.Response:
    return web.Response(text=render_docs(), content_type="text/html")
