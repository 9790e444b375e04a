"""One catalogue of error codes for the whole service, mapped once to HTTP statuses.

Every failure that crosses a socket is an ``IbhostError``: a code from CODES,
a message, optionally the offending field and the IB error code behind it.
"""

from __future__ import annotations

from typing import Any

# code -> (HTTP status, meaning)
CODES: dict[str, tuple[int, str]] = {
    "bad_request": (400, "the request is malformed or a field is invalid"),
    "unauthorized": (401, "an API key is required"),
    "forbidden": (403, "not allowed (trading off, a guard refused, or the key is wrong)"),
    "not_found": (404, "no such contract, order or route (IB 200)"),
    "method_not_allowed": (405, "the route does not take this method (Allow names those "
                                "it takes)"),
    "ambiguous": (409, "more than one contract matches; add fields to narrow it (IB 200)"),
    "conflict": (409, "the request conflicts with the current state"),
    "request_timeout": (408, "the request's headers or body did not arrive in time"),
    "payload_too_large": (413, "the request body is over the configured limit"),
    "misdirected": (421, "the Host header is not a name of this gateway"),
    "pacing": (429, "IB pacing limits: the request was refused or the queue is full (IB 162)"),
    "line_budget": (429, "the market-data line budget is used up; the answer names what "
                        "holds the lines"),
    "subscription_required": (403, "market data needs a subscription (IB 354/10089)"),
    "competing_session": (409, "market data unavailable: the user is logged in elsewhere "
                               "(IB 10197)"),
    "rejected": (422, "IB rejected the order"),
    "no_data": (404, "IB has no data for this request (IB 162, no data)"),
    "unavailable": (503, "the IB connection is not ready"),
    "maintenance": (503, "IB's scheduled maintenance, or the gateway's daily auto-restart: "
                         "try again after the time named"),
    "overloaded": (503, "too many open connections from one client address"),
    "timeout": (504, "IB did not answer in time"),
    "internal": (500, "unexpected internal error"),
}

# IB error code -> our code, for errors that end a request.
IB_CODES: dict[int, str] = {
    200: "not_found",
    162: "pacing",  # refined by message text in from_ib()
    321: "bad_request",
    322: "bad_request",
    354: "subscription_required",
    10089: "subscription_required",
    10090: "subscription_required",
    10197: "competing_session",
    504: "unavailable",
    502: "unavailable",
    1100: "unavailable",
    103: "rejected",
    104: "rejected",
    110: "rejected",
    201: "rejected",
    202: "rejected",
    387: "rejected",
    434: "rejected",
    10147: "not_found",
    10148: "conflict",
}


class IbhostError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        ib_code: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.ib_code = ib_code
        self.extra = extra or {}

    @property
    def status(self) -> int:
        return CODES[self.code][0]

    def to_dict(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            err["field"] = self.field
        if self.ib_code is not None:
            err["ib_code"] = self.ib_code
        err.update(self.extra)
        return {"error": err}

    @classmethod
    def from_dict(cls, data: dict[str, Any], status: int | None = None) -> IbhostError:
        err = data.get("error", {}) if isinstance(data, dict) else {}
        code = err.get("code", "internal")
        if code not in CODES:
            code = "internal"
        extra = {k: v for k, v in err.items()
                 if k not in ("code", "message", "field", "ib_code")}
        return cls(code, str(err.get("message", data)), field=err.get("field"),
                   ib_code=err.get("ib_code"), extra=extra)


def bad_request(field: str, problem: str) -> IbhostError:
    return IbhostError("bad_request", f"{field}: {problem}", field=field)


def bad_header(name: str, problem: str) -> IbhostError:
    """A request header the gateway reads is invalid (``"in": "header"`` tells a
    client it is not a body field)."""
    return IbhostError("bad_request", f"{name}: {problem}", field=name,
                       extra={"in": "header"})


def too_large(limit: int) -> IbhostError:
    """A request body over ``limit`` bytes."""
    return IbhostError("payload_too_large", f"body is over {limit} bytes", field="body")


def from_ib(ib_code: int, message: str) -> IbhostError:
    """Turn an IB error on a request into the catalogue's error."""
    code = IB_CODES.get(ib_code, "rejected" if ib_code < 1000 else "bad_request")
    if ib_code == 162:
        low = message.lower()
        if "pacing violation" in low:
            code = "pacing"
        elif "no historical market data for" in low:
            # IB has no bars of this kind for the contract (TRADES on a forex pair)
            return IbhostError("bad_request", f"whatToShow: IB has no such data for this "
                               f"contract (IB error 162: {message}); forex and CFDs have "
                               "MIDPOINT, BID and ASK, not TRADES",
                               field="whatToShow", ib_code=162)
        elif "no data" in low:
            code = "no_data"
        elif "permissions" in low:
            code = "subscription_required"
        else:
            code = "bad_request"
    if ib_code == 200 and "ambiguous" in message:
        code = "ambiguous"
    # 200 is always about the contract the request named
    field = "symbol" if ib_code == 200 else None
    return IbhostError(code, f"IB error {ib_code}: {message}", ib_code=ib_code, field=field)


def code_for_http_status(status: int) -> str:
    """The catalogue code for an HTTP error aiohttp raised itself (no route, ...)."""
    return {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        status, "bad_request")
