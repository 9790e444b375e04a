"""Configuration: ``ibhost.toml`` < ``IBHOST_*`` environment < command-line flags.

Loaded once, validated against the schema (``configschema.py``), injected into constructors.
Environment names are ``IBHOST_<SECTION>_<KEY>`` (``IBHOST_IB_PORT=4001``);
flags are ``--set section.key=value`` plus a few shortcuts. ``IBHOST_HOME`` /
``--home`` is the directory holding ``ibhost.toml``, ``run/``, ``data/``, ``log/``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

# the schema, re-exported: ``config.Config``, ``config.SCHEMA`` ... as before
from .configschema import _SECTIONS as _SECTIONS
from .configschema import SCHEMA as SCHEMA
from .configschema import SECRET_KEYS as SECRET_KEYS
from .configschema import Config as Config
from .configschema import ConnectorConfig as ConnectorConfig
from .configschema import GapfillConfig as GapfillConfig
from .configschema import GatewayConfig as GatewayConfig
from .configschema import IBConfig as IBConfig
from .configschema import PacingConfig as PacingConfig
from .configschema import StreamsConfig as StreamsConfig
from .configschema import TradingConfig as TradingConfig
from .configschema import WatchdogConfig as WatchdogConfig
from .configschema import settings as settings


class ConfigError(ValueError):
    def __init__(self, key: str, problem: str, source: str) -> None:
        super().__init__(f"{key}: {problem} (from {source})")
        self.key = key


def _shown(section: str, key: str, raw: Any) -> str:
    return "'***'" if (section, key) in SECRET_KEYS else repr(raw)


def _apply(values: dict[str, dict[str, Any]], sources: dict[str, str], section: str,
           key: str, raw: Any, source: str) -> None:
    if section not in SCHEMA:
        raise ConfigError(section, f"unknown section; known: {', '.join(SCHEMA)}", source)
    kind = SCHEMA[section].get(key)
    if kind is None:
        near = difflib.get_close_matches(key, SCHEMA[section], n=1)
        hint = f"; did you mean {section}.{near[0]}?" if near else \
            f"; known: {', '.join(SCHEMA[section])}"
        raise ConfigError(f"{section}.{key}", f"unknown key{hint}", source)
    try:
        values.setdefault(section, {})[key] = kind(raw)
    except (TypeError, ValueError) as e:
        reason = str(e) if section == "watchdog" and key == "maintenance" else ""
        got = f"got {_shown(section, key, raw)}" + (f" ({reason})" if reason else "")
        raise ConfigError(f"{section}.{key}", f"{got}, expected {kind.expected}",
                          source) from None
    sources[f"{section}.{key}"] = source


def load(
    *,
    home: str | os.PathLike[str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the configuration from file, environment and flags (later wins)."""
    return load_traced(home=home, config_file=config_file, env=env, overrides=overrides)[0]


def load_traced(
    *,
    home: str | os.PathLike[str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Config, dict[str, str]]:
    """``load``, plus where each value came from: ``{"ib.port": "$IBHOST_IB_PORT"}``
    (a file's path, ``$NAME``, ``--set key`` or ``--home``; keys absent are defaults)."""
    env = os.environ if env is None else env
    home_path = Path(home or env.get("IBHOST_HOME") or "~/.ibhost").expanduser().absolute()
    sources: dict[str, str] = {}
    if home:
        sources["home"] = "--home"
    elif env.get("IBHOST_HOME"):
        sources["home"] = "$IBHOST_HOME"
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
                _apply(values, sources, section, key, raw, str(cfg_path))
    for name, raw in sorted(env.items()):
        if not name.startswith("IBHOST_") or name == "IBHOST_HOME":
            continue
        rest = name[len("IBHOST_"):].lower()
        section, _, key = rest.partition("_")
        if section in SCHEMA:
            _apply(values, sources, section, key, raw, f"${name}")
    for dotted, raw in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        _apply(values, sources, section, key, raw, f"--set {dotted}")
    cfg = Config(home=home_path)
    for section in _SECTIONS:
        base = getattr(cfg, section)
        cfg = replace(cfg, **{section: replace(base, **values.get(section, {}))})
    _check(cfg)
    return cfg, sources


def _check(cfg: Config) -> None:
    ib = cfg.ib
    if ib.client_id_max < ib.client_id_start:
        raise ConfigError("ib.client_id_max", f"got {ib.client_id_max}, expected an integer "
                          f"at least ib.client_id_start ({ib.client_id_start})", "config")


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
