"""The configuration's schema: every section and key with its default, kind and
one-line description (the example file, ``ibhost config`` and the loader are
generated from it). ``config.py`` loads and checks a configuration against it.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from .configkinds import (
    BOOL,
    CLOCK_TIME,
    FRACTION,
    INT_NON_NEGATIVE,
    INT_POSITIVE,
    LISTEN_PORT,
    LOG_LEVEL,
    NUM_NON_NEGATIVE,
    NUM_POSITIVE,
    NUMBERS,
    PORT,
    STRINGS,
    TEXT,
    UPPER_STRINGS,
    WINDOWS,
    ZONE,
    Kind,
    choice,
)
from .windows import REGIONS

T = TypeVar("T")


def setting(default: T, kind: Kind, doc: str) -> T:
    """One key: its default, how it is read and a one-line description (the example
    file and ``ibhost config`` are generated from these, so they cannot drift)."""
    return field(default=default, metadata={"kind": kind, "doc": doc})


@dataclass(frozen=True)
class IBConfig:
    host: str = setting("127.0.0.1", TEXT, "IB Gateway / TWS host")
    port: int = setting(4002, PORT, "4002 paper gateway, 4001 live gateway, 7497/7496 TWS")
    backend: str = setting("ib_async", choice("ib_async", "ib_insync"), "API library")
    client_id_start: int = setting(1, INT_NON_NEGATIVE, "first client id tried")
    client_id_max: int = setting(50, INT_NON_NEGATIVE,
                                 "client ids wrap back to the start after this one")
    ids_per_attempt: int = setting(3, INT_POSITIVE,
                                   "client ids tried per attempt (error 326: id in use)")
    client_id_retry_delay: float = setting(1.5, NUM_NON_NEGATIVE,
                                           "seconds between two client ids")
    connect_timeout: float = setting(10.0, NUM_POSITIVE, "seconds to connect and sync")
    settle_delay: float = setting(0.5, NUM_NON_NEGATIVE,
                                  "seconds to wait after sync before serving")
    backoff: tuple[float, ...] = setting((5.0, 10.0, 30.0, 60.0, 120.0, 300.0), NUMBERS,
                                         "seconds between failed attempts, the last repeats")
    backoff_jitter: float = setting(0.1, NUM_NON_NEGATIVE,
                                    "random fraction added to each backoff")
    probe_interval: float = setting(1.0, NUM_POSITIVE,
                                    "seconds between TCP probes of the port while down")
    heartbeat_interval: float = setting(5.0, NUM_POSITIVE, "seconds between heartbeats")
    heartbeat_timeout: float = setting(5.0, NUM_POSITIVE,
                                       "seconds a heartbeat may take to be answered")
    heartbeat_misses: int = setting(2, INT_POSITIVE,
                                    "missed heartbeats in a row that mean the socket is dead")
    stall_after: float = setting(2.0, NUM_POSITIVE, "a request outstanding this long with "
                                 "nothing received: heartbeat at once")
    request_timeout: float = setting(60.0, NUM_POSITIVE, "seconds one IB request may take")
    account: str = setting("", TEXT, "orders go to this account when set")
    auto_restart: str = setting("", CLOCK_TIME, "IB Gateway's daily auto-restart, HH:MM (its "
                                "setting; empty: none); orders are held around it")
    auto_restart_tz: str = setting("", ZONE, "time zone of auto_restart (default: this "
                                   "machine's, as IB Gateway's own setting is)")


@dataclass(frozen=True)
class PacingConfig:
    identical_window: float = setting(15.0, NUM_NON_NEGATIVE,
                                      "seconds before an identical small-bar request repeats")
    burst_window: float = setting(2.0, NUM_NON_NEGATIVE,
                                  "seconds of the per-contract burst rule")
    burst_max: int = setting(5, INT_POSITIVE, "small-bar requests per contract per burst")
    window: float = setting(600.0, NUM_NON_NEGATIVE, "seconds of the rolling window")
    window_max: int = setting(60, INT_POSITIVE, "small-bar requests per rolling window")
    # IB allows 50 messages in any second, judged on arrival: at most this many in
    # any 1.05 s, counting every message sent (requests, cancels, heartbeats, the
    # library's own), grants evenly spaced; the margin under 50 absorbs messages
    # that arrive bunched after a pause on the way (seen: 5-6 at a time)
    messages_per_second: int = setting(43, INT_POSITIVE,
                                       "messages to IB per 1.05 s (IB allows 50 a second)")
    scale: float = setting(1.0, NUM_POSITIVE,
                           "multiply every window (tests against a scaled simulator)")
    margin: float = setting(0.2, NUM_NON_NEGATIVE, "seconds added to every window")
    queue_max: int = setting(1000, INT_POSITIVE, "requests waiting before new ones are refused")
    # 1-minute bars and larger: open requests at once (AIMD between 1 and open_max;
    # IB allows 50 open and answers more slowly under load)
    open_start: int = setting(4, INT_POSITIVE, "1-minute bars and larger: open requests at "
                              "first")
    open_max: int = setting(8, INT_POSITIVE, "1-minute bars and larger: open requests at most")
    keyless_share: float = setting(0.25, FRACTION, "the most of the window and message rate "
                                   "callers without an API key may hold")
    memory_file: str = setting("data/pacing.state", TEXT,
                               "hard-rule history kept across restarts (relative to home)")


@dataclass(frozen=True)
class ConnectorConfig:
    socket: str = setting("run/connector.sock", TEXT, "control socket (relative to home)")
    log_level: str = setting("INFO", LOG_LEVEL, "log level")
    cache_max_age: float = setting(3600.0, NUM_POSITIVE,
                                   "seconds option chains and contract details are kept")


@dataclass(frozen=True)
class GatewayConfig:
    host: str = setting("127.0.0.1", TEXT, "HTTP listen address")
    port: int = setting(5001, LISTEN_PORT, "HTTP listen port")
    api_key: str = setting("", TEXT, "comma-separated API keys; prefer "
                           "IBHOST_GATEWAY_API_KEY or key_file")
    key_file: str = setting("", TEXT, "file with one API key per line")
    reads_need_key: bool = setting(False, BOOL, "reads (and /metrics) need an API key too")
    max_body: int = setting(1 << 20, INT_POSITIVE, "largest request body, bytes")
    connector_timeout: float = setting(120.0, NUM_POSITIVE,
                                       "seconds to wait for the connector on a request")
    health_timeout: float = setting(0.8, NUM_POSITIVE,
                                    "seconds to wait for the connector's health")
    idempotency_file: str = setting("data/idempotency.sqlite3", TEXT,
                                    "idempotent-order store (relative to home)")
    idempotency_keep: float = setting(7 * 86400.0, NUM_POSITIVE,
                                      "seconds a key replays its first answer")
    idempotency_max_keys: int = setting(100_000, INT_POSITIVE,
                                        "idempotency keys kept; the oldest go first")
    bind: tuple[str, ...] = setting((), STRINGS, "more addresses to listen on besides "
                                    "host, e.g. a Docker bridge's 172.17.0.1 (requests "
                                    "there need a key; one not there yet is retried)")
    allowed_hosts: tuple[str, ...] = setting((), STRINGS, "Host names besides loopback "
                                             "ones (DNS rebinding; behind a reverse proxy)")
    cors_origins: tuple[str, ...] = setting((), STRINGS,
                                            "browser origins that may read answers (CORS)")
    header_timeout: float = setting(10.0, NUM_POSITIVE,
                                    "seconds from a request's first byte to its last header")
    body_timeout: float = setting(30.0, NUM_POSITIVE, "seconds to read a request's body")
    keepalive_timeout: float = setting(30.0, NUM_POSITIVE,
                                       "seconds an idle connection is kept open")
    max_connections_per_client: int = setting(256, INT_POSITIVE,
                                              "open connections per client address")
    log_level: str = setting("INFO", LOG_LEVEL, "log level")


@dataclass(frozen=True)
class TradingConfig:
    enabled: bool = setting(False, BOOL, "allow orders at all")
    max_quantity: float = setting(100.0, NUM_POSITIVE, "largest quantity of one order")
    max_notional: float = setting(10_000.0, NUM_POSITIVE, "largest value of one order")
    allowed_sec_types: tuple[str, ...] = setting(("STK",), UPPER_STRINGS,
                                                 "security types that may be traded")
    symbols: tuple[str, ...] = setting((), UPPER_STRINGS,
                                       "symbols that may be traded; empty allows every symbol")
    allow_market_options: bool = setting(False, BOOL, "allow market orders for options")
    restart_margin: float = setting(120.0, NUM_NON_NEGATIVE, "seconds before and after "
                                    "IB Gateway's auto-restart (ib.auto_restart) when "
                                    "orders are refused: one sent then could be lost")


@dataclass(frozen=True)
class GapfillConfig:
    data_dir: str = setting("data/bars", TEXT, "{SYMBOL}_{timeframe}.csv files (relative "
                            "to home, or absolute: KTRDR's data/)")
    socket: str = setting("run/gapfill.sock", TEXT, "control socket (relative to home)")
    interval: float = setting(300.0, NUM_POSITIVE, "seconds between scans")
    files_per_cycle: int = setting(5, INT_POSITIVE,
                                   "files per scan, round robin so every file is reached")
    max_age_days: float = setting(30.0, NUM_POSITIVE,
                                  "days at each file's end that are read and filled")
    timeframes: tuple[str, ...] = setting(("1m", "5m", "15m", "30m", "1h", "4h", "1d"),
                                          STRINGS, "timeframes kept complete")
    extended_hours: tuple[str, ...] = setting((), STRINGS, "files (SYMBOL_tf) judged on "
                                              "extended hours, e.g. ES_1h")
    state_file: str = setting("data/gapfill.json", TEXT, "no-data ranges and the "
                              "round-robin cursor (relative to home)")
    log_level: str = setting("INFO", LOG_LEVEL, "log level")


@dataclass(frozen=True)
class WatchdogConfig:
    socket: str = setting("run/watchdog.sock", TEXT, "control socket (relative to home)")
    probe_interval: float = setting(1.0, NUM_POSITIVE, "seconds between connector probes")
    probe_timeout: float = setting(2.0, NUM_POSITIVE, "seconds one probe may take")
    fail_threshold: int = setting(5, INT_POSITIVE,
                                  "failed probes in a row before the connector is restarted")
    restart_cooldown: float = setting(30.0, NUM_NON_NEGATIVE,
                                      "seconds between two restarts of a program")
    jump_threshold: float = setting(5.0, NUM_POSITIVE,
                                    "seconds of clock jump that mean the machine slept")
    region: str = setting("na", choice(*REGIONS),
                          "IB server region, for its maintenance windows")
    maintenance: tuple[str, ...] = setting((), WINDOWS,
                                           "maintenance windows; overrides the region's")
    maintenance_tz: str = setting("", TEXT, "time zone of maintenance (default: the "
                                  "region's)")
    ibc_enabled: bool = setting(False, BOOL, "talk to IBC's command server")
    ibc_host: str = setting("127.0.0.1", TEXT, "IBC command server host")
    ibc_port: int = setting(7462, PORT, "IBC command server port")
    ibc_farm_loss_after: float = setting(120.0, NUM_POSITIVE,
                                         "seconds of farm loss before IBC is asked to act")
    ibc_restart_after: float = setting(900.0, NUM_POSITIVE,
                                       "seconds down before IBC restarts the gateway")
    # an IB outage that began inside a maintenance window and is still there this
    # long after the window ended (IB Gateway left at its login screen), or any
    # outage this long: logged as an error, counted, IBC RESTART, alert_command
    outage_grace: float = setting(60.0, NUM_NON_NEGATIVE, "seconds an outage may outlast "
                                  "its maintenance window before escalating")
    outage_alert_after: float = setting(600.0, NUM_POSITIVE,
                                        "seconds of any outage before escalating")
    alert_command: str = setting("", TEXT, "run (no shell) on an escalation, IBHOST_ALERT_* "
                                 "in its environment")
    log_level: str = setting("INFO", LOG_LEVEL, "log level")


@dataclass(frozen=True)
class StreamsConfig:
    market_data_lines: int = setting(100, INT_POSITIVE, "IB market-data lines of the "
                                     "account (100 unless bought or earned more)")
    snapshot_lines: int = setting(10, INT_NON_NEGATIVE, "lines kept free for snapshots; "
                                  "quote streams may use the rest")
    linger: float = setting(5.0, NUM_NON_NEGATIVE, "seconds a stream stays at IB after "
                            "its last consumer left")
    snapshot_hold: float = setting(30.0, NUM_NON_NEGATIVE, "a contract snapshotted twice "
                                   "within this many seconds is held as a live quote "
                                   "until this long after its last snapshot, and its "
                                   "snapshots are answered from it (0: never)")
    stale_after: float = setting(60.0, NUM_NON_NEGATIVE, "seconds without an update, "
                                 "market open, before a stream is re-requested (0: never)")
    journal_file: str = setting("data/orders.journal", TEXT, "order events, each with a "
                                "sequence number, for consumers that resume")
    journal_keep: int = setting(10_000, INT_POSITIVE, "order events kept in the journal")
    consumer_queue: int = setting(1000, INT_POSITIVE, "events a consumer may have unread "
                                  "(quotes conflate) before it is closed")
    max_consumers_per_key: int = setting(100, INT_POSITIVE, "open streams per API key "
                                         "(or per keyless caller)")
    max_subscriptions: int = setting(200, INT_POSITIVE, "subscriptions of one stream")
    max_consumers: int = setting(2000, INT_POSITIVE, "open streams in all")
    heartbeat: float = setting(15.0, NUM_POSITIVE, "seconds between keep-alives on an "
                               "idle stream")


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
    streams: StreamsConfig = field(default_factory=StreamsConfig)

    def path(self, rel: str) -> Path:
        p = Path(rel).expanduser()
        return p if p.is_absolute() else self.home / p

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def connector_socket(self) -> Path:
        return self.path(self.connector.socket)


_SECTIONS: dict[str, type] = {
    "ib": IBConfig, "pacing": PacingConfig, "connector": ConnectorConfig,
    "gateway": GatewayConfig, "trading": TradingConfig, "watchdog": WatchdogConfig,
    "gapfill": GapfillConfig, "streams": StreamsConfig,
}
# section -> key -> kind, derived from the dataclasses above
SCHEMA: dict[str, dict[str, Kind]] = {
    name: {f.name: f.metadata["kind"] for f in fields(cls)} for name, cls in _SECTIONS.items()
}
SECRET_KEYS = {("gateway", "api_key")}


def settings(section: str) -> list[Field[Any]]:
    """The keys of one section, in declaration order (each with kind and doc)."""
    return list(fields(_SECTIONS[section]))
