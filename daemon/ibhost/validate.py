"""Small converters for request bodies and query strings; each names the bad field."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import IbhostError, bad_request, too_large

if TYPE_CHECKING:
    from aiohttp import web


async def json_body(request: web.Request, limit: int = 1 << 20, *,
                    required: bool = False, timeout: float | None = None) -> dict[str, Any]:
    """The request's JSON object: 413 past ``limit`` bytes (declared or streamed),
    408 when it has not all arrived within ``timeout`` seconds, 400 naming the problem
    for anything that is not a JSON object. No body at all is ``{}``, or a 400 when
    the body is ``required``."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:  # read() hands out what has arrived: read to the end, counting
                chunk = await request.content.read(min(1 << 16, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
    except TimeoutError:
        raise IbhostError("request_timeout", f"body: did not arrive within {timeout:g} s",
                          field="body") from None
    return json_object(b"".join(chunks), required=required)


def json_object(raw: bytes, *, required: bool = False) -> dict[str, Any]:
    """A request body as a JSON object (``{}`` for none, unless ``required``); a 400
    naming the problem for anything else."""
    if not raw.strip():
        if required:
            raise bad_request("body", "is required (a JSON object)")
        return {}
    try:
        text = raw.decode("utf-8")  # RFC 8259: JSON between systems is UTF-8
    except UnicodeDecodeError as e:
        raise bad_request("body", f"is not valid UTF-8 (byte {e.start})") from None
    huge: list[str] = []

    def parse_int(digits: str) -> int | _HugeInt:
        # int() refuses more than sys.get_int_max_str_digits() digits (4300) with a
        # plain ValueError: keep a marker instead, to name the field it sits in
        try:
            return int(digits)
        except ValueError:
            huge.append(digits)
            return _HugeInt()

    try:
        data = json.loads(text, parse_int=parse_int)
    except json.JSONDecodeError:
        raise bad_request("body", "is not valid JSON") from None
    except RecursionError:
        raise bad_request("body", "is nested too deeply") from None
    if not isinstance(data, dict):
        raise bad_request("body", "must be a JSON object")
    if huge:
        field = next((k for k, v in data.items() if _holds_huge(v)), "body")
        raise bad_request(field, f"has an integer of more than "
                                 f"{sys.get_int_max_str_digits()} digits")
    return data


class _HugeInt:
    """Where the body had an integer too long to convert."""


def _holds_huge(v: Any) -> bool:
    """Whether ``v`` holds a _HugeInt at any depth (a loop: the body may nest deeply)."""
    todo = [v]
    while todo:
        x = todo.pop()
        if isinstance(x, _HugeInt):
            return True
        if isinstance(x, dict):
            todo.extend(x.values())
        elif isinstance(x, list):
            todo.extend(x)
    return False


def printable_ascii(text: str) -> bool:
    """Letters, digits, punctuation and spaces only: what may travel in a TWS message
    (its fields are NUL-separated; a control character would shift every field)."""
    return text.isascii() and text.isprintable()


def opt_str(m: Mapping[str, Any], name: str, default: str = "", *, upper: bool = False,
            choices: tuple[str, ...] | None = None, max_len: int = 64,
            to_ib: bool = False) -> str:
    """An optional string; ``to_ib``: it is sent to IB, so printable ASCII only."""
    v = m.get(name)
    if v is None or v == "":
        out = default
    elif not isinstance(v, str):
        raise bad_request(name, "must be a string")
    elif not v.isprintable():
        raise bad_request(name, "has control characters")
    elif to_ib and not v.isascii():
        raise bad_request(name, "must be printable ASCII")
    else:
        out = v.strip()
    if len(out) > max_len:
        raise bad_request(name, f"is longer than {max_len} characters")
    if upper:
        out = out.upper()
    if choices is not None and out not in choices:
        raise bad_request(name, f"must be one of {', '.join(choices)}")
    return out


def req_str(m: Mapping[str, Any], name: str, **kw: Any) -> str:
    out = opt_str(m, name, **kw)
    if not out:
        raise bad_request(name, "is required")
    return out


def symbol_ok(symbol: str, extra: str = ".-/ ") -> bool:
    """ASCII letters and digits first, then those and ``extra`` (IB's symbols)."""
    return symbol.isascii() and symbol[:1].isalnum() and all(
        c.isalnum() or c in extra for c in symbol)


# The one reading of a boolean written as a word (a query string, an environment
# variable, a configuration value, a simulator control parameter): any case, spaces
# around ignored; 0 and 1 as numbers too. OpenAPI's pattern is built from these.
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def bool_word(v: Any) -> bool | None:
    """True or False for a boolean, a 0/1 or one of the words; None for anything else."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return bool(v) if v in (0, 1) else None
    if isinstance(v, str):
        s = v.strip().lower()
        if s in TRUE_WORDS:
            return True
        if s in FALSE_WORDS:
            return False
    return None


def bool_pattern() -> str:
    """A JSON-Schema pattern for the words (no inline flags there: each letter's cases)."""
    def word(w: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in w)

    # empty: the default
    return r"^\s*(" + "|".join(word(w) for w in (*TRUE_WORDS, *FALSE_WORDS)) + r"|)\s*$"


def opt_bool(m: Mapping[str, Any], name: str, default: bool) -> bool:
    v = m.get(name)
    if v is None or (isinstance(v, str) and not v.strip()):  # blank: the default
        return default
    b = bool_word(v)
    if b is None:
        raise bad_request(name, "must be true or false")
    return b


def opt_float(m: Mapping[str, Any], name: str, default: float | None = None, *,
              positive: bool = False, minimum: float | None = None,
              maximum: float | None = None) -> float | None:
    v = m.get(name)
    if v is None or v == "":
        return default
    if isinstance(v, bool) or (isinstance(v, str) and not v.isascii()):
        raise bad_request(name, "must be a number")
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        raise bad_request(name, "must be a number") from None
    if math.isnan(f) or math.isinf(f):
        raise bad_request(name, "must be a finite number")
    if positive and f <= 0:
        raise bad_request(name, "must be positive")
    if minimum is not None and f < minimum:
        raise bad_request(name, f"must be at least {minimum:g}")
    if maximum is not None and f > maximum:
        raise bad_request(name, f"must be at most {maximum:g}")
    return f


def opt_int(m: Mapping[str, Any], name: str, default: int, *, minimum: int = 0,
            maximum: int = 2**31 - 1) -> int:
    v = m.get(name)
    if v is None or v == "":
        return default
    if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
        raise bad_request(name, "must be an integer")
    if isinstance(v, str) and not (v.strip().lstrip("+-").isascii()
                                   and v.strip().lstrip("+-").isdigit()):
        raise bad_request(name, "must be an integer (ASCII digits)")
    try:
        i = int(v)
    except (TypeError, ValueError, OverflowError):
        raise bad_request(name, "must be an integer") from None
    if not minimum <= i <= maximum:
        raise bad_request(name, f"must be between {minimum} and {maximum}")
    return i


# a caller's deadline (?timeout= or X-Timeout), in seconds: below a tenth of a second
# not even connector.sock answers, so a smaller one is a mistake, not a wish
TIMEOUT_MIN, TIMEOUT_MAX = 0.1, 3600.0


def timeout_seconds(raw: str) -> float:
    """A deadline the caller asked for, within TIMEOUT_MIN..TIMEOUT_MAX seconds."""
    try:
        asked = float(raw) if raw.isascii() else math.nan
    except ValueError:
        asked = math.nan
    if not TIMEOUT_MIN <= asked <= TIMEOUT_MAX:  # also NaN
        raise bad_request("timeout", f"must be a number of seconds from {TIMEOUT_MIN:g} "
                                     f"to {TIMEOUT_MAX:g}")
    return asked


def opt_datetime(m: Mapping[str, Any], name: str) -> dt.datetime | None:
    """ISO 8601 (UTC unless an offset is given) or a YYYY-MM-DD date (midnight UTC)."""
    v = m.get(name)
    if v is None or v == "":
        return None
    if not isinstance(v, str) or len(v) > 40:
        raise bad_request(name, "must be an ISO 8601 date/time string")
    t = parse_iso(name, v.strip())
    if t.year < 1970 or t.year > 2100:
        raise bad_request(name, "is out of range (1970-2100)")
    return t


def parse_iso(name: str, text: str) -> dt.datetime:
    """ISO 8601 text (UTC unless an offset is given), or a 400 naming the field."""
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(name, "must be an ISO 8601 date/time like "
                                "2025-11-20T14:30:00Z") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def int_list(m: Mapping[str, Any], name: str, allowed: tuple[int, ...]) -> list[int]:
    v = m.get(name)
    if v is None or v == "" or v == []:
        return []
    items = v.split(",") if isinstance(v, str) else v
    if not isinstance(items, list) or len(items) > 64:
        raise bad_request(name, "must be a list of up to 64 integers")
    out = []
    for x in items:
        if isinstance(x, bool) or (isinstance(x, float) and not x.is_integer()) or (
                isinstance(x, str) and not (x.strip().isascii() and x.strip().isdigit())):
            raise bad_request(name, "must be a list of integers")
        try:
            i = int(x)
        except (TypeError, ValueError, OverflowError):
            raise bad_request(name, "must be a list of integers") from None
        if i not in allowed:
            raise bad_request(name, f"{i} is not one of {', '.join(map(str, allowed))}")
        out.append(i)
    return out
