"""The gateway's OpenAPI 3.1 description, and a self-contained docs page rendered from it."""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from .. import __version__

CONTRACT = {
    "type": "object",
    "properties": {
        "symbol": {"type": "string", "example": "AAPL"},
        "secType": {"type": "string", "default": "STK",
                    "enum": ["STK", "OPT", "FUT", "CASH", "IND", "FOP", "CFD", "BOND", "FUND",
                             "CRYPTO"]},
        "exchange": {"type": "string", "default": "SMART"},
        "currency": {"type": "string", "default": "USD", "description": "\"\" for any"},
        "primaryExchange": {"type": "string"},
        "lastTradeDateOrContractMonth": {"type": "string", "description": "YYYYMM[DD]"},
        "expiry": {"type": "string", "description": "alias of lastTradeDateOrContractMonth"},
        "strike": {"type": "number"},
        "right": {"type": "string", "enum": ["C", "P"]},
        "multiplier": {"type": "string"},
        "localSymbol": {"type": "string"},
        "tradingClass": {"type": "string"},
        "conId": {"type": "integer"},
    },
}
ERROR = {
    "type": "object",
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "enum": [
            "bad_request", "unauthorized", "forbidden", "not_found", "ambiguous", "conflict",
            "payload_too_large", "misdirected", "pacing", "subscription_required",
            "competing_session",
            "rejected", "no_data", "unavailable", "timeout", "internal"]},
        "message": {"type": "string"}, "field": {"type": "string"},
        "ib_code": {"type": "integer"}, "guard": {"type": "string"}}}},
}
HISTORICAL = {"allOf": [{"$ref": "#/components/schemas/Contract"}, {
    "type": "object",
    "properties": {
        "barSize": {"type": "string", "example": "1 min",
                    "description": "IB bar size: 1 secs … 8 hours, 1 day, 1 week, 1 month"},
        "timeframe": {"type": "string", "example": "1h",
                      "description": "alternative to barSize: 1s 5s … 1m 5m 15m 30m 1h 4h 1d "
                                     "1w 1M"},
        "start": {"type": "string", "format": "date-time"},
        "end": {"type": "string", "format": "date-time", "description": "default now"},
        "duration": {"type": "string", "example": "2 D",
                     "description": "instead of start: one IB request"},
        "whatToShow": {"type": "string", "default": "TRADES",
                       "enum": ["TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"]},
        "useRTH": {"type": "boolean", "default": True},
        "priority": {"type": "string", "enum": ["interactive", "background"]},
    }}]}
ORDER = {"allOf": [{"$ref": "#/components/schemas/Contract"}, {
    "type": "object", "required": ["action", "quantity"],
    "properties": {
        "action": {"type": "string", "enum": ["BUY", "SELL"]},
        "quantity": {"type": "number", "exclusiveMinimum": 0},
        "orderType": {"type": "string", "default": "LMT",
                      "enum": ["MKT", "LMT", "STP", "STP LMT"]},
        "limitPrice": {"type": "number"}, "stopPrice": {"type": "number"},
        "tif": {"type": "string", "default": "DAY"}, "outsideRth": {"type": "boolean"},
        "orderRef": {"type": "string"},
    }}]}

KTRDR_HISTORICAL = {"type": "object", "required": ["symbol", "timeframe", "start", "end"],
                    "properties": {
                        "symbol": {"type": "string", "example": "AAPL"},
                        "timeframe": {"type": "string", "enum": [
                            "1m", "5m", "15m", "30m", "1h", "2h", "3h", "4h", "1d", "1w",
                            "1M"]},
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time"},
                        "instrument_type": {"type": ["string", "null"],
                                            "example": "STK"}}}
KTRDR_VALIDATE = {"type": "object", "required": ["symbol"], "properties": {
    "symbol": {"type": "string"}, "timeframes": {"type": ["array", "null"],
                                                 "items": {"type": "string"}}}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _op(summary: str, *, body: str | None = None, query: list[str] | None = None,
        key: str = "read", ok: str = "200", extra: str = "") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "description": extra or summary,
                          "responses": {ok: {"description": "OK"},
                                        "default": {"description": "error", "content": {
                                            "application/json": {"schema": {
                                                "$ref": "#/components/schemas/Error"}}}}}}
    if key == "bridge":
        op["security"] = [{"apiKey": []}]
        op["description"] += " (X-API-KEY needed once a key is configured)"
    if key == "trading":
        op["security"] = [{"apiKey": []}]
        op["parameters"] = [{"name": "Idempotency-Key", "in": "header", "required": False,
                             "schema": {"type": "string", "maxLength": 128}}]
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if query:
        op.setdefault("parameters", []).extend(
            {"name": q, "in": "query", "required": q == "symbol", "schema": {"type": "string"}}
            for q in query)
    return op


SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "ibhost gateway", "version": __version__,
             "description": "One healthy Interactive Brokers API connection, over HTTP."},
    "components": {
        "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        "schemas": {"Contract": CONTRACT, "Error": ERROR, "HistoricalRequest": HISTORICAL,
                    "OrderRequest": ORDER, "KtrdrHistorical": KTRDR_HISTORICAL,
                    "KtrdrValidate": KTRDR_VALIDATE},
    },
    "paths": {
        "/": {"get": _op("service info: name, version, endpoints (KTRDR's keys too)")},
        "/ping": {"get": _op("liveness of the gateway itself (no IB, no connector call)")},
        "/health": {"get": _op(
            "one health body for every client; always 200", query=["connect"],
            extra="status ok / degraded / busy / disconnected; healthy, connected and ready "
            "are true only while IB is usable; ib_status (KTRDR), clientId, host, port, "
            "tradingMode (wheel-strat), ibhostStatus and connector (ibhost). connect=true "
            "asks the connector now. For a failing status code use /readyz or /v1/health.")},
        "/livez": {"get": _op("200 while the gateway runs")},
        "/readyz": {"get": _op("200 while IB is usable (ok/degraded), else 503")},
        "/health/detailed": {"get": _op(
            "KTRDR's detailed health fields, then the connector's diagnostics")},
        "/v1/health": {"get": _op(
            "connection health: ok / degraded / down / busy, within 1 s",
            query=["connect"], extra="connect=false (default) answers from the state the "
            "gateway polls every second; connect=true asks the connector now (bounded by "
            "gateway.health_timeout). 200 for ok/degraded, 503 for down/busy.")},
        "/v1/health/detailed": {"get": _op("all connector diagnostics and the programs' "
                                           "status")},
        "/v1/data/historical": {"post": _op(
            "historical bars (UTC)", body="HistoricalRequest", query=["format"],
            extra="format=json (columnar, default) | records | csv, or Accept: text/csv. "
            "Long ranges are chunked under IB's pacing rules and stitched.")},
        "/v1/data/validate": {"post": _op("contract metadata, or 404 / 409 ambiguous",
                                          body="Contract")},
        "/v1/data/head-timestamp": {"get": _op("earliest available data", query=[
            "symbol", "secType", "exchange", "currency", "whatToShow", "useRTH"])},
        "/v1/options/chain": {"get": _op("option expirations and strikes per exchange",
                                         query=["symbol", "secType", "exchange", "currency"])},
        "/v1/market/snapshot": {"post": _op(
            "bid/ask/last/volume; greeks, IV, HV, OI with genericTicks", body="Contract")},
        "/v1/orders": {
            "post": _op("place an order (trading must be enabled; X-API-Key required)",
                        body="OrderRequest", key="trading", ok="201",
                        extra="Guards: trading.enabled, allowed secTypes, symbol allow-list, "
                        "no MKT on options, max quantity, max notional (403 naming the "
                        "guard). Idempotency-Key: a retry returns the first answer and never "
                        "places a second order, also across restarts."),
            "get": _op("open orders"),
        },
        "/v1/orders/{orderId}": {"delete": {**_op("cancel an order", key="trading"),
                                            "parameters": [{"name": "orderId", "in": "path",
                                                            "required": True,
                                                            "schema": {"type": "integer"}}]}},
        "/v1/executions": {"get": _op("fills", query=["symbol", "secType", "side", "since",
                                                      "clientId"])},
        "/v1/positions": {"get": _op("positions")},
        "/v1/portfolio": {"get": _op("portfolio: positions with market price, value, PnL")},
        "/v1/account/summary": {"get": _op("account summary: every tag IB reports")},
        "/v1/pnl": {"get": _op("daily, unrealized and realized PnL (conId: one position)",
                               query=["account", "model", "conId"])},
        "/v1/system/ib-status": {"get": _op("IB connection status")},
        "/v1/system/system-status": {"get": _op("status of every program")},
        "/v1/gapfill/status": {"get": _op("the gap-filler: last and next scan, per file "
                                          "gaps found and filled, bars written, errors")},
        "/v1/gapfill/scan": {"post": _op("scan now (optionally {files: [...]}); answers what "
                                         "the scan did", query=["timeout"])},
        "/api/v1/system/gap-filler-status": {"get": _op("same as /v1/gapfill/status")},
        "/api/v1/system/gap-filler/force-scan": {"post": _op("same as /v1/gapfill/scan")},
        "/api/v1/system/ib-status": {"get": _op("same as /v1/system/ib-status")},
        "/api/v1/system/system-status": {"get": _op("same as /v1/system/system-status")},
        "/data/historical": {"post": _op(
            "KTRDR: bars as DataFrame.to_json(orient=index) text", body="KtrdrHistorical",
            extra="200 {success, data, error, rows}; failures are 200 success=false; "
            "invalid input 422 {detail}. end is inclusive.")},
        "/data/validate": {"post": _op("KTRDR: is_valid, contract_info, head_timestamps",
                                       body="KtrdrValidate")},
        "/data/head-timestamp": {"get": _op("KTRDR: earliest data as ISO text", query=[
            "symbol", "timeframe", "instrument_type"])},
        "/data/symbol-info/{symbol}": {"get": {**_op("KTRDR: validation with the 1h head "
                                                     "timestamp"),
                                               "parameters": [_path("symbol")]}},
        "/diag": {"get": _op("wheel-strat: connection diagnostics (no key)")},
        "/market-data/{symbol}": {"get": {**_op(
            "wheel-strat: quote, realtime -> frozen -> delayed", key="bridge"),
            "parameters": [_path("symbol")]}},
        "/market-data/batch": {"post": _op("wheel-strat: quotes for {symbols: [...]}",
                                           key="bridge")},
        "/option-chain/{symbol}": {"get": {**_op("wheel-strat: expirations and strikes",
                                                 key="bridge"),
                                           "parameters": [_path("symbol")]}},
        "/option-quote": {"post": _op("wheel-strat: option quote with greeks", key="bridge")},
        "/historical": {"post": _op("wheel-strat: bars {symbol, bars: [{date, ...}]}",
                                    key="bridge")},
        "/order": {"post": _op("wheel-strat: place an order (uid -> orderRef)",
                               key="trading")},
        "/order/cancel": {"post": _op("wheel-strat: cancel by orderId or permId",
                                      key="trading")},
        "/executions": {"get": _op("wheel-strat: {executions, count}",
                                   query=["lookbackDays"], key="bridge")},
        "/orders": {"get": _op("wheel-strat: {orders, count}", key="bridge")},
        "/positions": {"get": _op("wheel-strat: {positions, count}", key="bridge")},
        "/portfolio": {"get": _op("wheel-strat: portfolio {positions, count}", key="bridge")},
        "/account-summary": {"get": _op("wheel-strat: summary tags as numbers",
                                        key="bridge")},
        "/pnl": {"get": _op("wheel-strat: account PnL", query=["account", "model"],
                            key="bridge")},
        "/pnl-single": {"get": _op("wheel-strat: one position's PnL",
                                   query=["conId", "account", "model"], key="bridge")},
        "/metrics": {"get": _op("Prometheus metrics of the whole tree")},
        "/openapi.json": {"get": _op("this document")},
        "/docs": {"get": _op("human-readable API page")},
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
