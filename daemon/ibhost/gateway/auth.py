"""API keys: loaded from config/env or a key file, compared in constant time, never logged."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from pathlib import Path

from ..config import Config
from ..errors import IbhostError
from ..ipc import KEYLESS

HEADER = "X-API-Key"


def load_keys(cfg: Config) -> tuple[bytes, ...]:
    keys = [k.strip() for k in cfg.gateway.api_key.split(",") if k.strip()]
    if cfg.gateway.key_file:
        path = cfg.path(cfg.gateway.key_file)
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ValueError(f"gateway.key_file: cannot read {path}: {e.strerror}") from None
        keys += [line.strip() for line in text.splitlines()
                 if line.strip() and not line.startswith("#")]
    for k in keys:
        if len(k) < 16:
            raise ValueError("gateway.api_key: every key must be at least 16 characters")
    return tuple(k.encode() for k in keys)


class Authenticator:
    def __init__(self, keys: tuple[bytes, ...], reads_need_key: bool) -> None:
        self._keys = keys
        self.reads_need_key = reads_need_key

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def _valid(self, given: str | None) -> bool:
        if given is None:
            return False
        g = given.encode()
        ok = False
        for k in self._keys:  # check every key: timing does not reveal which matched
            ok |= hmac.compare_digest(g, k)
        return ok

    def redact(self, text: str) -> str:
        """``text`` with every configured key written as ``***``."""
        for k in self._keys:
            text = text.replace(k.decode(), "***")
        return text

    def caller(self, given: str | None) -> str:
        """Who a request is for, as the connector's scheduler shares IB: ``key-`` and a
        digest of a valid key (never the key itself), else KEYLESS. An invalid or
        made-up key is keyless, so a client cannot mint identities of its own."""
        if given is None or not self._valid(given):
            return KEYLESS
        return "key-" + hashlib.sha256(given.encode()).hexdigest()[:16]

    def check(self, given: str | None, *, trading: bool) -> None:
        """Raise 401/403 unless this request may proceed."""
        if trading:
            if not self._keys:
                raise IbhostError("forbidden", "trading needs an API key and none is "
                                  "configured (gateway.api_key or gateway.key_file)",
                                  extra={"guard": "api_key"})
        elif not self.reads_need_key:
            return
        if given is None:
            raise IbhostError("unauthorized", f"missing {HEADER} header", field=HEADER)
        if not self._valid(given):
            raise IbhostError("forbidden", f"invalid {HEADER}", field=HEADER)


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
