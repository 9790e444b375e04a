"""The kinds of value a setting takes: a converter plus the form it expects, in words.

A converter raises ``ValueError`` with a short reason; config.py turns it into one
``ConfigError`` naming the key, the value given and ``expected`` (never Python's own
``invalid literal for int()``). It imports only the leaf ``windows`` of ibhost's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .windows import parse_window


@dataclass(frozen=True)
class Kind:
    """How one setting is read: ``parse`` raises ValueError, ``expected`` says what fits."""

    parse: Callable[[Any], Any]
    expected: str

    def __call__(self, raw: Any) -> Any:
        return self.parse(raw)


def _int(v: Any) -> int:
    if isinstance(v, bool):  # TOML `true` is not 1
        raise ValueError("a boolean is not an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        s = v.strip()
        if s.lstrip("+-").isdigit():
            return int(s)
    raise ValueError("not an integer")


def _float(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(v, int | float):
        x = float(v)
    elif isinstance(v, str):
        try:
            x = float(v.strip())
        except ValueError:
            raise ValueError("not a number") from None
    else:
        raise ValueError("not a number")
    if not math.isfinite(x):
        raise ValueError("not a finite number")
    return x


def _ranged(conv: Callable[[Any], Any], ok: Callable[[Any], bool]) -> Callable[[Any], Any]:
    def parse(v: Any) -> Any:
        x = conv(v)
        if not ok(x):
            raise ValueError("out of range")
        return x

    return parse


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise ValueError("not a string")


def _bool(v: Any) -> bool:
    from .validate import bool_word

    b = bool_word(v)
    if b is None:
        raise ValueError("not a boolean")
    return b


def _items(v: Any, sep: str = ",") -> list[Any]:
    if isinstance(v, list | tuple):
        return list(v)
    if isinstance(v, str):
        return [x for x in v.split(sep) if x.strip()]
    raise ValueError("not a list")


def _floats(v: Any) -> tuple[float, ...]:
    out = tuple(_float(x) for x in _items(v))
    if not out or any(x < 0 for x in out):
        raise ValueError("empty or negative")
    return out


def _strings(v: Any) -> tuple[str, ...]:
    items = _items(v)
    if not all(isinstance(x, str) for x in items):
        raise ValueError("not a list of strings")
    return tuple(x.strip() for x in items if x.strip())


def _windows(v: Any) -> tuple[str, ...]:
    items = _strings(_items(v, ";"))
    for item in items:
        parse_window(item)  # raises ValueError naming the problem
    return items


TEXT = Kind(_text, "a string")
BOOL = Kind(_bool, "true or false")
INT_POSITIVE = Kind(_ranged(_int, lambda x: x > 0), "an integer above 0")
INT_NON_NEGATIVE = Kind(_ranged(_int, lambda x: x >= 0), "an integer, 0 or more")
NUM_POSITIVE = Kind(_ranged(_float, lambda x: x > 0), "a number above 0")
NUM_NON_NEGATIVE = Kind(_ranged(_float, lambda x: x >= 0), "a number, 0 or more")
FRACTION = Kind(_ranged(_float, lambda x: 0 < x <= 1), "a number above 0 and at most 1")
PORT = Kind(_ranged(_int, lambda x: 0 < x < 65536), "a TCP port, an integer 1-65535")
LISTEN_PORT = Kind(_ranged(_int, lambda x: 0 <= x < 65536),
                   "a TCP port, an integer 0-65535 (0 picks a free one)")
NUMBERS = Kind(_floats, "a non-empty list of numbers, each 0 or more "
                        '(TOML [5, 10] or "5,10")')
STRINGS = Kind(_strings, 'a list of strings (TOML ["a", "b"] or "a,b")')
UPPER_STRINGS = Kind(lambda v: tuple(x.upper() for x in _strings(v)),
                     'a list of names (TOML ["STK", "OPT"] or "STK,OPT")')
WINDOWS = Kind(_windows, "a list of windows 'daily HH:MM-HH:MM' or 'sun HH:MM-HH:MM' "
                         "(a TOML list, or separated by ';')")
LOG_LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR")


def _clock_time(v: Any) -> str:
    s = _text(v).strip()
    if not s:
        return ""
    hh, sep, mm = s.partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and len(mm) == 2 and int(hh) < 24
            and int(mm) < 60):
        raise ValueError("not HH:MM")
    return f"{int(hh):02d}:{mm}"


CLOCK_TIME = Kind(_clock_time, "a time of day HH:MM (24-hour), or empty for none")


def _zone(v: Any) -> str:
    s = _text(v).strip()
    if s:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(s)
        except Exception:
            raise ValueError("not a time zone") from None
    return s


ZONE = Kind(_zone, "an IANA time zone such as America/New_York, or empty")


def choice(*options: str) -> Kind:
    def parse(v: Any) -> str:
        if isinstance(v, str) and v in options:
            return v
        raise ValueError("not one of the choices")

    return Kind(parse, f"one of {', '.join(options)}")


LOG_LEVEL = choice(*LOG_LEVEL_NAMES)
