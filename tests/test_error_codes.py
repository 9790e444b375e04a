"""The OpenAPI document names only codes the catalogue produces, and a wrong method
gets the documented error body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema

from ibhost.errors import CODES, IbhostError, code_for_http_status
from ibhost.gateway.openapi import SPEC
from ibhost.sim import Simulator

from .test_gateway import gateway


def _error_enums(node: Any) -> list[list[str]]:
    """Every enum of an error body's ``code`` in the document."""
    found = []
    if isinstance(node, dict):
        code = node.get("properties", {}).get("code") if "message" in node.get(
            "properties", {}) else None
        if isinstance(code, dict) and "enum" in code:
            found.append(code["enum"])
        for v in node.values():
            found += _error_enums(v)
    elif isinstance(node, list):
        for v in node:
            found += _error_enums(v)
    return found


def test_every_documented_error_code_is_in_the_catalogue() -> None:
    enums = _error_enums(SPEC)
    assert enums, "the document declares no error codes"
    for enum in enums:
        assert set(enum) <= set(CODES), set(enum) - set(CODES)
    assert set(CODES) <= set(enums[0])


def test_aiohttps_own_errors_map_to_codes_of_their_status() -> None:
    for status in (404, 405, 413):
        assert IbhostError(code_for_http_status(status), "x").status == status


async def test_a_wrong_method_gets_the_documented_body(aiohttp_client: Any, tmp_path: Path,
                                                       sim: Simulator) -> None:
    schema = SPEC["components"]["schemas"]["Error"]
    async with gateway(aiohttp_client, tmp_path, sim) as gw:
        for method, path in (("PUT", "/v1/data/validate"), ("DELETE", "/ping")):
            r = await gw.request(method, path)
            body = await r.json()
            assert r.status == 405 and r.headers["Allow"], (method, path)
            jsonschema.validate(body, schema)
            assert body["error"]["code"] == "method_not_allowed"
            assert CODES[body["error"]["code"]][0] == 405
