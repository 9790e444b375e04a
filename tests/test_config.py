"""`ibhost config`, the generated example file, and configuration errors that name the
key, the value given and the form expected."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibhost import config, configcmd

KEYS = [(s, f.name) for s in config.SCHEMA for f in config.settings(s)]
PYTHON_WORDS = ("invalid literal", "could not convert", "argument must be", "object",
                "Traceback", "base 10")


def test_example_names_every_key_and_parses_back_to_the_defaults(tmp_path: Path) -> None:
    text = configcmd.example()
    data = tomllib.loads(text)
    assert {(s, k) for s, table in data.items() for k in table} == set(KEYS)
    for section, key in KEYS:
        f = next(f for f in config.settings(section) if f.name == key)
        assert f.metadata["doc"].strip(), f"{section}.{key} has no description"
        assert f"# {f.metadata['doc']}" in text
    (tmp_path / "ibhost.toml").write_text(text)
    assert config.load(home=tmp_path, env={}) == config.Config(home=tmp_path)


def test_schema_is_derived_from_the_dataclasses() -> None:
    assert set(config.SCHEMA) == {"ib", "pacing", "connector", "gateway", "trading",
                                  "watchdog", "gapfill", "streams"}
    for section, table in config.SCHEMA.items():
        assert list(table) == [f.name for f in config.settings(section)]


@pytest.mark.parametrize(("key", "raw", "expected"), [
    ("ib.port", "abc", "a TCP port, an integer 1-65535"),
    ("ib.port", "4002.5", "an integer 1-65535"),
    ("ib.port", True, "an integer 1-65535"),
    ("ib.port", 70000, "an integer 1-65535"),
    ("gateway.port", "-1", "an integer 0-65535"),
    ("ib.heartbeat_misses", "two", "an integer above 0"),
    ("gateway.max_body", "1MB", "an integer above 0"),
    ("ib.connect_timeout", "fast", "a number above 0"),
    ("ib.connect_timeout", "nan", "a number above 0"),
    ("ib.connect_timeout", [1], "a number above 0"),
    ("pacing.margin", "-0.1", "a number, 0 or more"),
    ("pacing.keyless_share", "2", "above 0 and at most 1"),
    ("gateway.reads_need_key", "maybe", "true or false"),
    ("trading.enabled", 2, "true or false"),
    ("ib.backend", "ibapi", "one of ib_async, ib_insync"),
    ("gateway.log_level", "info", "one of DEBUG, INFO, WARNING, ERROR"),
    ("ib.backoff", "1,a", "a non-empty list of numbers"),
    ("ib.backoff", "", "a non-empty list of numbers"),
    ("gateway.cors_origins", [1, 2], "a list of strings"),
    ("watchdog.maintenance", "sun 25:00-26:00", "'daily HH:MM-HH:MM'"),
    ("ib.host", ["a"], "a string"),
])
def test_a_bad_value_names_the_key_the_value_and_the_expected_form(
        tmp_path: Path, key: str, raw: object, expected: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.load(home=tmp_path, env={}, overrides={key: raw})
    text = str(err.value)
    assert text.startswith(f"{key}: got {raw!r}"), text
    assert f"expected {expected}" in text or expected in text, text
    assert f"(from --set {key})" in text
    assert not any(w in text for w in PYTHON_WORDS), text


def test_errors_from_the_file_and_the_environment_name_their_source(tmp_path: Path) -> None:
    (tmp_path / "ibhost.toml").write_text("[gateway]\nport = 'seventy'\n")
    with pytest.raises(config.ConfigError,
                       match=r"gateway\.port: got 'seventy', expected a TCP port.*ibhost\.toml"):
        config.load(home=tmp_path, env={})
    (tmp_path / "ibhost.toml").write_text("")
    with pytest.raises(config.ConfigError, match=r"\(from \$IBHOST_WATCHDOG_FAIL_THRESHOLD\)"):
        config.load(home=tmp_path, env={"IBHOST_WATCHDOG_FAIL_THRESHOLD": "0"})
    with pytest.raises(config.ConfigError, match=r"did you mean ib\.port\?"):
        config.load(home=tmp_path, env={"IBHOST_IB_PROT": "1"})


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(KEYS), st.one_of(st.text(max_size=12), st.integers(), st.floats(),
                                        st.booleans(), st.lists(st.integers(), max_size=2)))
def test_any_value_is_accepted_or_refused_in_words(key: tuple[str, str], raw: object) -> None:
    dotted = f"{key[0]}.{key[1]}"
    try:
        config.load(home="/nonexistent-ibhost-home", env={}, overrides={dotted: raw})
    except config.ConfigError as e:
        text = str(e)
        assert text.startswith(f"{dotted}: ") or text.startswith("ib.client_id_max: "), text
        assert "expected" in text and not any(w in text for w in PYTHON_WORDS), text


def test_a_secret_is_never_shown(tmp_path: Path) -> None:
    cfg, sources = config.load_traced(home=tmp_path, env={"IBHOST_GATEWAY_API_KEY": "s3cret"})
    out = configcmd.report(cfg, sources, tmp_path / "ibhost.toml")
    assert "s3cret" not in out and 'api_key = "***"' in out
    assert "s3cret" not in json.dumps(configcmd.report_json(cfg, sources))


def test_report_says_where_each_value_came_from(tmp_path: Path) -> None:
    (tmp_path / "ibhost.toml").write_text('[ib]\nport = 4001\nhost = "10.0.0.5"\n')
    env = {"IBHOST_IB_PORT": "4003", "IBHOST_PYTHON": "/usr/bin/python3"}
    cfg, sources = config.load_traced(home=tmp_path, env=env,
                                      overrides={"pacing.scale": "0.5"})
    report = configcmd.report(cfg, sources, tmp_path / "ibhost.toml")
    source: dict[str, str] = {}
    section = ""
    for line in report.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif " = " in line:
            source[f"{section}.{line.split(' =')[0]}"] = line.split("# ")[-1]
    assert source["ib.port"] == "from $IBHOST_IB_PORT"
    assert source["ib.host"] == f"from {tmp_path / 'ibhost.toml'}"
    assert source["pacing.scale"] == "from --set pacing.scale"
    assert source["ib.backend"] == source["gateway.port"] == "default"
    assert len(source) == len(KEYS)
    assert tomllib.loads(report)["ib"]["port"] == 4003  # the report is TOML too


def _ibhost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ibhost.cli", "config", *args],
                          capture_output=True, text=True, timeout=60)


def test_config_command(tmp_path: Path) -> None:
    res = _ibhost("--home", str(tmp_path), "--port", "4001", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["ib"]["port"] == {"value": 4001, "source": "--set ib.port"}
    assert data["home"]["source"] == "--home"
    res = _ibhost("--home", str(tmp_path), "--set", "ib.port=abc")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "ib.port: got 'abc', expected a TCP port" in res.stderr
    out = tmp_path / "example.toml"
    res = _ibhost("--example", "--output", str(out))
    assert res.returncode == 0 and out.read_text() == configcmd.example()
    res = _ibhost("--example", "--output", str(out))  # never over an existing file
    assert res.returncode == 1 and "exists" in res.stderr
