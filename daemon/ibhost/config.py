"""Configuration: ``ibhost.toml`` < ``IBHOST_*`` environment < command-line flags.

Loaded once, validated against the schema below, injected into constructors.
Environment names are ``IBHOST_<SECTION>_<KEY>`` (``IBHOST_IB_PORT=4001``);
flags are ``--set section.key=value`` plus a few shortcuts. ``IBHOST_HOME`` /
``--home`` is the directory holding ``ibhost.toml``, ``run/``, ``data/``, ``log/``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {v!r}")


def _floats(v: Any) -> tuple[float, ...]:
    items = v if isinstance(v, list | tuple) else str(v).split(",")
    out = tuple(float(x) for x in items)
    if not out or any(x < 0 for x in out):
        raise ValueError("must be a non-empty list of non-negative numbers")
    return out


def _upper_list(v: Any) -> tuple[str, ...]:
    items = v if isinstance(v, list | tuple) else str(v).split(",")
    return tuple(str(x).strip().upper() for x in items if str(x).strip())


def _str_list(v: Any) -> tuple[str, ...]:
    items = v if isinstance(v, list | tuple) else str(v).split(",")
    return tuple(str(x).strip() for x in items if str(x).strip())


def _windows(v: Any) -> tuple[str, ...]:
    from .watchdog.maintenance import parse_window

    items = v if isinstance(v, list | tuple) else [x for x in str(v).split(";") if x.strip()]
    for item in items:
        parse_window(str(item))  # raises ValueError naming the problem
    return tuple(str(x).strip() for x in items)


def _positive(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def conv(v: Any) -> Any:
        x = kind(v)
        if x <= 0:
            raise ValueError("must be positive")
        return x

    return conv


def _non_negative(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def conv(v: Any) -> Any:
        x = kind(v)
        if x < 0:
            raise ValueError("must not be negative")
        return x

    return conv


def _fraction(v: Any) -> float:
    x = float(v)
    if not 0 < x <= 1:  # also NaN
        raise ValueError("must be above 0 and at most 1")
    return x


def _choice(*options: str) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        s = str(v)
        if s not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return s

    return conv


def _listen_port(v: Any) -> int:
    p = int(v)
    if not 0 <= p < 65536:
        raise ValueError("must be a TCP port (0 picks a free one)")
    return p


def _port(v: Any) -> int:
    p = int(v)
    if not 0 < p < 65536:
        raise ValueError("must be a TCP port (1-65535)")
    return p


@dataclass(frozen=True)
class IBConfig:
    host: str = "127.0.0.1"
    port: int = 4002
    backend: str = "ib_async"
    client_id_start: int = 1
    client_id_max: int = 50
    ids_per_attempt: int = 3
    client_id_retry_delay: float = 1.5
    connect_timeout: float = 10.0
    settle_delay: float = 0.5
    backoff: tuple[float, ...] = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
    backoff_jitter: float = 0.1
    probe_interval: float = 1.0
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 5.0
    heartbeat_misses: int = 2
    # a request outstanding with nothing received for this long: probe at once
    stall_after: float = 2.0
    request_timeout: float = 60.0
    account: str = ""


@dataclass(frozen=True)
class PacingConfig:
    identical_window: float = 15.0
    burst_window: float = 2.0
    burst_max: int = 5
    window: float = 600.0
    window_max: int = 60
    # IB allows 50 messages in any second, judged on arrival: at most this many in
    # any 1.05 s, counting every message sent (requests, cancels, heartbeats, the
    # library's own), grants evenly spaced
    messages_per_second: int = 49
    scale: float = 1.0
    margin: float = 0.2
    queue_max: int = 1000
    # 1-minute bars and larger: open requests at once (AIMD between 1 and open_max;
    # IB allows 50 open and answers more slowly under load)
    open_start: int = 4
    open_max: int = 8
    # the most of the 10-minute window and of the message rate that callers without
    # an API key (one bucket) may hold; callers with a key may use it all
    keyless_share: float = 0.25
    memory_file: str = "data/pacing.state"  # hard-rule history kept across restarts


@dataclass(frozen=True)
class ConnectorConfig:
    socket: str = "run/connector.sock"
    log_level: str = "INFO"
    cache_max_age: float = 3600.0  # seconds option chains and contract details are kept


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 5001
    api_key: str = ""  # comma-separated keys; prefer IBHOST_GATEWAY_API_KEY or key_file
    key_file: str = ""  # one key per line
    reads_need_key: bool = False
    max_body: int = 1 << 20
    connector_timeout: float = 120.0
    health_timeout: float = 0.8
    idempotency_file: str = "data/idempotency.sqlite3"
    idempotency_keep: float = 7 * 86400.0  # seconds a key replays its first answer
    idempotency_max_keys: int = 100_000  # the oldest keys go first beyond this
    allowed_hosts: tuple[str, ...] = ()  # Host names besides loopback ones (DNS rebinding)
    cors_origins: tuple[str, ...] = ()  # browser origins that may read answers (CORS)
    header_timeout: float = 10.0  # seconds from a request's first byte to its last header
    body_timeout: float = 30.0  # seconds to read a request's body
    keepalive_timeout: float = 30.0  # seconds an idle connection is kept open
    max_connections_per_client: int = 256  # open connections per client address
    log_level: str = "INFO"


@dataclass(frozen=True)
class TradingConfig:
    enabled: bool = False
    max_quantity: float = 100.0
    max_notional: float = 10_000.0
    allowed_sec_types: tuple[str, ...] = ("STK",)
    symbols: tuple[str, ...] = ()  # allow-list; empty allows every symbol
    allow_market_options: bool = False


@dataclass(frozen=True)
class GapfillConfig:
    data_dir: str = "data/bars"  # {SYMBOL}_{timeframe}.csv; point it at KTRDR's data/
    socket: str = "run/gapfill.sock"
    interval: float = 300.0  # seconds between scans
    files_per_cycle: int = 5  # round robin, so every file is reached
    max_age_days: float = 30.0  # only this much of each file's end is read and filled
    timeframes: tuple[str, ...] = ("1m", "5m", "15m", "30m", "1h", "4h", "1d")
    extended_hours: tuple[str, ...] = ()  # files (SYMBOL_tf) judged on extended hours
    state_file: str = "data/gapfill.json"  # no-data ranges and the round-robin cursor
    log_level: str = "INFO"


@dataclass(frozen=True)
class WatchdogConfig:
    socket: str = "run/watchdog.sock"
    probe_interval: float = 1.0
    probe_timeout: float = 2.0
    fail_threshold: int = 5  # consecutive failed probes before a restart
    restart_cooldown: float = 30.0
    jump_threshold: float = 5.0  # seconds of clock jump that mean the machine slept
    region: str = "na"
    maintenance: tuple[str, ...] = ()  # overrides the region's windows
    maintenance_tz: str = ""
    ibc_enabled: bool = False
    ibc_host: str = "127.0.0.1"
    ibc_port: int = 7462
    ibc_farm_loss_after: float = 120.0
    ibc_restart_after: float = 900.0
    # an IB outage that began inside a maintenance window and is still there this
    # long after the window ended (IB Gateway left at its login screen), or any
    # outage this long: logged as an error, counted, IBC RESTART, alert_command
    outage_grace: float = 60.0
    outage_alert_after: float = 600.0
    alert_command: str = ""  # run (no shell) on an escalation, IBHOST_ALERT_* in its env
    log_level: str = "INFO"


@dataclass(frozen=True)
class Config:
    home: Path = field(default_factory=lambda: Path("~/.ibhost").expanduser())
    ib: IBConfig = field(default_factory=IBConfig)
    pacing: PacingConfig = field(default_factory=PacingConfig)
    connector: ConnectorConfig = field(default_factory=ConnectorConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    trading: TradingConfig = field(default_factory=TradingConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    gapfill: GapfillConfig = field(default_factory=GapfillConfig)

    def path(self, rel: str) -> Path:
        p = Path(rel).expanduser()
        return p if p.is_absolute() else self.home / p

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def connector_socket(self) -> Path:
        return self.path(self.connector.socket)


SCHEMA: dict[str, dict[str, Callable[[Any], Any]]] = {
    "ib": {
        "host": str, "port": _port, "backend": _choice("ib_async", "ib_insync"),
        "client_id_start": _non_negative(int), "client_id_max": _non_negative(int),
        "ids_per_attempt": _positive(int), "client_id_retry_delay": _non_negative(float),
        "connect_timeout": _positive(float), "settle_delay": _non_negative(float),
        "backoff": _floats, "backoff_jitter": _non_negative(float),
        "probe_interval": _positive(float), "heartbeat_interval": _positive(float),
        "heartbeat_timeout": _positive(float), "heartbeat_misses": _positive(int),
        "stall_after": _positive(float),
        "request_timeout": _positive(float), "account": str,
    },
    "pacing": {
        "identical_window": _non_negative(float), "burst_window": _non_negative(float),
        "burst_max": _positive(int), "window": _non_negative(float),
        "window_max": _positive(int), "messages_per_second": _positive(int),
        "scale": _positive(float), "margin": _non_negative(float),
        "queue_max": _positive(int), "open_start": _positive(int),
        "open_max": _positive(int), "memory_file": str, "keyless_share": _fraction,
    },
    "connector": {"socket": str, "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR"),
                  "cache_max_age": _positive(float)},
    "gateway": {
        "host": str, "port": _listen_port, "api_key": str, "key_file": str,
        "reads_need_key": _bool, "max_body": _positive(int),
        "connector_timeout": _positive(float), "health_timeout": _positive(float),
        "idempotency_file": str, "idempotency_keep": _positive(float),
        "idempotency_max_keys": _positive(int), "allowed_hosts": _str_list,
        "cors_origins": _str_list,
        "header_timeout": _positive(float), "body_timeout": _positive(float),
        "keepalive_timeout": _positive(float), "max_connections_per_client": _positive(int),
        "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR"),
    },
    "trading": {
        "enabled": _bool, "max_quantity": _positive(float), "max_notional": _positive(float),
        "allowed_sec_types": _upper_list, "symbols": _upper_list,
        "allow_market_options": _bool,
    },
    "gapfill": {
        "data_dir": str, "socket": str, "interval": _positive(float),
        "files_per_cycle": _positive(int), "max_age_days": _positive(float),
        "timeframes": _str_list, "extended_hours": _str_list, "state_file": str,
        "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR"),
    },
    "watchdog": {
        "socket": str, "probe_interval": _positive(float), "probe_timeout": _positive(float),
        "fail_threshold": _positive(int), "restart_cooldown": _non_negative(float),
        "jump_threshold": _positive(float), "region": _choice("na", "eu", "asia", "none"),
        "maintenance": _windows, "maintenance_tz": str, "ibc_enabled": _bool,
        "ibc_host": str, "ibc_port": _port, "ibc_farm_loss_after": _positive(float),
        "ibc_restart_after": _positive(float), "outage_grace": _non_negative(float),
        "outage_alert_after": _positive(float), "alert_command": str,
        "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR"),
    },
}
_SECTIONS = {"ib": IBConfig, "pacing": PacingConfig, "connector": ConnectorConfig,
             "gateway": GatewayConfig, "trading": TradingConfig, "watchdog": WatchdogConfig,
             "gapfill": GapfillConfig}
SECRET_KEYS = {("gateway", "api_key")}


class ConfigError(ValueError):
    def __init__(self, key: str, problem: str, source: str) -> None:
        super().__init__(f"{key}: {problem} (from {source})")
        self.key = key


def _apply(values: dict[str, dict[str, Any]], section: str, key: str, raw: Any,
           source: str) -> None:
    if section not in SCHEMA:
        raise ConfigError(section, f"unknown section; known: {', '.join(SCHEMA)}", source)
    conv = SCHEMA[section].get(key)
    if conv is None:
        raise ConfigError(f"{section}.{key}", "unknown key", source)
    try:
        values.setdefault(section, {})[key] = conv(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{section}.{key}", str(e), source) from None


def load(
    *,
    home: str | os.PathLike[str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the configuration from file, environment and flags (later wins)."""
    env = os.environ if env is None else env
    home_path = Path(home or env.get("IBHOST_HOME") or "~/.ibhost").expanduser().absolute()
    values: dict[str, dict[str, Any]] = {}
    cfg_path = Path(config_file) if config_file else home_path / "ibhost.toml"
    if config_file and not cfg_path.exists():
        raise ConfigError("config", f"file not found: {cfg_path}", "--config")
    if cfg_path.exists():
        try:
            data = tomllib.loads(cfg_path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError("config", f"invalid TOML: {e}", str(cfg_path)) from None
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(section, "must be a table", str(cfg_path))
            for key, raw in table.items():
                _apply(values, section, key, raw, str(cfg_path))
    for name, raw in env.items():
        if not name.startswith("IBHOST_") or name == "IBHOST_HOME":
            continue
        rest = name[len("IBHOST_"):].lower()
        section, _, key = rest.partition("_")
        if section in SCHEMA:
            _apply(values, section, key, raw, f"${name}")
    for dotted, raw in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        _apply(values, section, key, raw, f"--set {dotted}")
    cfg = Config(home=home_path)
    for section in _SECTIONS:
        base = getattr(cfg, section)
        cfg = replace(cfg, **{section: replace(base, **values.get(section, {}))})
    _check(cfg)
    return cfg


def _check(cfg: Config) -> None:
    ib = cfg.ib
    if ib.client_id_max < ib.client_id_start:
        raise ConfigError("ib.client_id_max", "must be >= ib.client_id_start", "config")


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set a.b=c`` flags into overrides; a value that starts with ``[`` is a TOML
    list (``--set 'trading.allowed_sec_types=["STK","OPT"]'``). Raises ConfigError
    on a bad item."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(item, "expected section.key=value", "--set")
        if value.strip().startswith("["):
            try:
                out[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(key.strip(), f"not a TOML list ({e})", "--set") from None
            continue
        out[key.strip()] = value
    return out


def describe(cfg: Config) -> dict[str, Any]:
    """The effective configuration as plain data (for /status)."""
    out: dict[str, Any] = {"home": str(cfg.home)}
    for section in _SECTIONS:
        obj = getattr(cfg, section)
        out[section] = {f.name: ("***" if (section, f.name) in SECRET_KEYS and
                                 getattr(obj, f.name) else getattr(obj, f.name))
                        for f in fields(obj)}
    return out
