"""TWS API socket framing from the server side: length-prefixed, NUL-separated fields.

The layout follows ib_async 2.1.0 ``client.py`` (sender) and ``decoder.py`` (reader);
those sources are the authority for every field written here.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from typing import Any

# Versions this simulator can speak. Layouts below 157 (pre fractional sizes etc.)
# are not implemented; ib_async and ib_insync both require >= 157 anyway.
MIN_SERVER_VERSION = 157
MAX_SERVER_VERSION = 178

UNSET_DOUBLE = 1.7976931348623157e308
UNSET_INTEGER = 2**31 - 1

HEADER = b"API\0"


class In:
    """Incoming (client -> server) message ids."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCT_DATA = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_HISTORICAL_DATA = 20
    CANCEL_HISTORICAL_DATA = 25
    REQ_CURRENT_TIME = 49
    REQ_REAL_TIME_BARS = 50
    CANCEL_REAL_TIME_BARS = 51
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_SEC_DEF_OPT_PARAMS = 78
    REQ_HEAD_TIMESTAMP = 87
    CANCEL_HEAD_TIMESTAMP = 90
    REQ_PNL = 92
    CANCEL_PNL = 93
    REQ_PNL_SINGLE = 94
    CANCEL_PNL_SINGLE = 95
    REQ_TICK_BY_TICK_DATA = 97
    CANCEL_TICK_BY_TICK_DATA = 98
    REQ_COMPLETED_ORDERS = 99


class Out:
    """Outgoing (server -> client) message ids."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MANAGED_ACCTS = 15
    HISTORICAL_DATA = 17
    TICK_OPTION_COMPUTATION = 21
    TICK_GENERIC = 45
    TICK_STRING = 46
    CURRENT_TIME = 49
    REAL_TIME_BARS = 50
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    ACCOUNT_UPDATE_MULTI = 73
    ACCOUNT_UPDATE_MULTI_END = 74
    SECURITY_DEFINITION_OPTION_PARAMETER = 75
    SECURITY_DEFINITION_OPTION_PARAMETER_END = 76
    HEAD_TIMESTAMP = 88
    HISTORICAL_DATA_UPDATE = 90
    PNL = 94
    PNL_SINGLE = 95
    TICK_BY_TICK = 99
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102


def fmt(value: Any) -> str:
    """Render one field the way TWS does: unset numbers empty, bools 0/1."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value == UNSET_DOUBLE or math.isnan(value):
            return ""
        if value == math.inf:
            return "Infinite"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(round(value, 8))
    if isinstance(value, int):
        return "" if value == UNSET_INTEGER else str(value)
    return str(value)


def frame(fields: Iterable[Any]) -> bytes:
    """Encode one message: 4-byte big-endian length, then NUL-terminated fields."""
    body = b"".join(fmt(f).encode() + b"\0" for f in fields)
    return struct.pack(">I", len(body)) + body


def frame_raw(fields: Iterable[str]) -> bytes:
    """Encode already-rendered string fields (the handshake reply)."""
    body = b"".join(f.encode() + b"\0" for f in fields)
    return struct.pack(">I", len(body)) + body


class FrameReader:
    """Accumulates bytes from the socket and yields complete messages as field lists."""

    MAX_MESSAGE = 16 * 1024 * 1024

    def __init__(self) -> None:
        self._buf = bytearray()

    def append(self, data: bytes) -> None:
        self._buf += data

    def feed(self, data: bytes) -> list[list[str]]:
        """Append ``data`` and return every complete message now buffered."""
        self._buf += data
        out: list[list[str]] = []
        while len(self._buf) >= 4:
            (size,) = struct.unpack(">I", self._buf[:4])
            if size > self.MAX_MESSAGE:
                raise ValueError(f"message of {size} bytes exceeds the limit")
            if len(self._buf) < 4 + size:
                break
            body = bytes(self._buf[4 : 4 + size])
            del self._buf[: 4 + size]
            fields = body.decode(errors="backslashreplace").split("\0")
            if fields and fields[-1] == "":
                fields.pop()
            out.append(fields)
        return out

    def take_raw(self, n: int) -> bytes | None:
        """Take ``n`` unframed bytes (the ``API\\0`` prefix) if they have arrived."""
        if len(self._buf) < n:
            return None
        raw = bytes(self._buf[:n])
        del self._buf[:n]
        return raw


def parse_version_range(text: str) -> tuple[int, int, str]:
    """Parse the client's ``v157..178 +PACEAPI`` into (min, max, options)."""
    head, _, options = text.strip().partition(" ")
    if not head.startswith("v"):
        raise ValueError(f"bad version string {text!r}")
    lo, sep, hi = head[1:].partition("..")
    low = int(lo)
    high = int(hi) if sep else low
    return low, high, options.strip()


class Fields:
    """Sequential reader over an incoming message's fields with typed getters."""

    def __init__(self, fields: list[str], start: int = 1) -> None:
        self.fields = fields
        self.pos = start

    def text(self) -> str:
        if self.pos >= len(self.fields):
            self.pos += 1
            return ""
        v = self.fields[self.pos]
        self.pos += 1
        return v

    def integer(self, default: int = 0) -> int:
        v = self.text()
        return int(v) if v not in ("", None) else default

    def number(self, default: float = 0.0) -> float:
        v = self.text()
        if v in ("", None):
            return default
        if v == "Infinite":
            return math.inf
        return float(v)

    def flag(self) -> bool:
        v = self.text()
        return bool(int(v)) if v else False

    def skip(self, n: int = 1) -> None:
        self.pos += n
