"""Request fields, declared once: how each is read from a JSON body or a query string
(a 400 naming the field when it is wrong) and how the OpenAPI document describes it.

A request is a frozen dataclass whose fields carry one of these in their metadata
(``text()``, ``number()``, ``integer()``, ``flag()``, ``when()``, ``int_list()``);
``Ask.read`` builds it from a body or query, ``Ask.schema`` describes it. Rules that
tie fields together are the request's ``check`` (what the server refuses) and its
``RULES`` (the same rules as JSON Schema, built from the tables the check reads).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

from . import validate
from .errors import bad_request

PRINTABLE = "^[ -~]*$"  # printable ASCII: what a TWS message may carry
# any other text: no control characters (C0, DEL, C1), as the reader checks it
NO_CONTROL = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
CONTROL = re.compile("[\\x00-\\x1f\\x7f-\\x9f]")
# ISO 8601 from 1970 to 2099, UTC or with an offset (days 01-28 in every month: the
# pattern cannot know a month's length)
DATE_TIME = {"type": "string", "example": "2025-11-20T14:30:00Z", "pattern": (
    "^(19[7-9][0-9]|20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])$")}
# a boolean as the gateway reads one: JSON true/false, 0/1, or validate's words
QUERY_BOOL = {"type": "string", "pattern": validate.bool_pattern()}
JSON_BOOL = {"anyOf": [{"type": "boolean"}, QUERY_BOOL, {"type": "integer", "enum": [0, 1]}]}


def _or_empty(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter: given empty, it is absent."""
    return {"anyOf": [schema, {"const": ""}]}


def null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null."""
    if list(schema) == ["anyOf"]:
        return {"anyOf": [*schema["anyOf"], {"type": "null"}]}
    return {"anyOf": [schema, {"type": "null"}]}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Field:
    required: bool = False
    description: str = ""
    # the field as the document states it, when the reader's own description is not
    # the whole story (a pattern for a rule the reader checks in code, say)
    doc: dict[str, Any] | None = None
    hidden: bool = False  # read (an old client's spelling), not published

    def read(self, m: Mapping[str, Any], name: str, *, query: bool = False) -> Any:
        """The field's value in a JSON body, or in a query string (``query``: numbers
        and booleans come as text)."""
        raise NotImplementedError

    def base_schema(self, query: bool) -> dict[str, Any]:
        raise NotImplementedError

    def schema(self, query: bool = False) -> dict[str, Any]:
        out = dict(self.doc) if self.doc is not None else self.base_schema(query)
        if self.description:
            out["description"] = self.description
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class Text(Field):
    default: str = ""
    upper: bool = False
    choices: tuple[str, ...] | None = None
    lower_too: bool = False  # the document lists the choices in lower case too
    max_len: int = 64
    to_ib: bool = False  # sent to IB: printable ASCII only
    keep_empty: bool = False  # "" is a value of its own, not the default
    # a full-match rule for a non-empty value, and what a value that breaks it is told
    pattern: str | None = None
    pattern_error: str = ""
    check: Callable[[str], str | None] | None = None  # a problem, or None
    example: str | None = None

    def read(self, m: Mapping[str, Any], name: str, *, query: bool = False) -> str:
        v = m.get(name)
        if v is None or (v == "" and not self.keep_empty):
            out = self.default
        elif not isinstance(v, str):
            raise bad_request(name, "must be a string")
        elif CONTROL.search(v):
            raise bad_request(name, "has control characters")
        elif self.to_ib and not re.fullmatch(PRINTABLE, v):
            raise bad_request(name, "must be printable ASCII")
        else:
            out = v.strip()
        if len(out) > self.max_len:
            raise bad_request(name, f"is longer than {self.max_len} characters")
        if self.upper:
            out = out.upper()
        if self.required and not out:
            raise bad_request(name, "is required")
        if self.choices is not None and out and out not in self.choices:
            raise bad_request(name, f"must be one of {', '.join(c for c in self.choices if c)}")
        if out and self.pattern is not None and not re.fullmatch(self.pattern, out):
            raise bad_request(name, self.pattern_error or f"must match {self.pattern}")
        if out and self.check is not None:
            problem = self.check(out)
            if problem:
                raise bad_request(name, problem)
        return out

    def base_schema(self, query: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        if self.choices is not None:
            enum = list(self.choices)
            if self.lower_too:
                enum += [c.lower() for c in enum if c.lower() != c]
            out["enum"] = enum
        else:
            if self.required:  # "" is not given
                out["minLength"] = 1
            out["maxLength"] = self.max_len
            if self.pattern is not None:
                out["pattern"] = f"^({self.pattern})?$"
            else:
                out["pattern"] = PRINTABLE if self.to_ib else NO_CONTROL
        if self.default and not self.required:
            out["default"] = self.default
        if self.example is not None:
            out["example"] = self.example
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class Number(Field):
    default: float | None = None
    positive: bool = False
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None  # an exclusive maximum
    json_only: bool = False  # a JSON number in a body, never text

    def read(self, m: Mapping[str, Any], name: str, *, query: bool = False) -> float | None:
        if self.json_only and not query and isinstance(m.get(name), str):
            raise bad_request(name, "must be a number")
        out = validate.opt_float(m, name, self.default, positive=self.positive,
                                 minimum=self.minimum, maximum=self.maximum)
        if self.required and out is None:
            raise bad_request(name, "is required")
        if out is not None and self.below is not None and out >= self.below:
            raise bad_request(name, f"must be below {self.below:g}")
        return out

    def base_schema(self, query: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "number"}
        if self.positive:
            out["exclusiveMinimum"] = 0
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.below is not None:
            out["exclusiveMaximum"] = self.below
        if self.default is not None:
            out["default"] = self.default
        return _or_empty(out) if query and not self.required else out


@dataclasses.dataclass(frozen=True, kw_only=True)
class Integer(Field):
    default: int = 0
    minimum: int = 0
    maximum: int = 2**31 - 1
    json_only: bool = False  # a JSON number in a body, never text

    def read(self, m: Mapping[str, Any], name: str, *, query: bool = False) -> int:
        if self.required and m.get(name) in (None, ""):
            raise bad_request(name, "is required")
        if self.json_only and not query and isinstance(m.get(name), str):
            raise bad_request(name, "must be an integer")
        return validate.opt_int(m, name, self.default, minimum=self.minimum,
                                maximum=self.maximum)

    def base_schema(self, query: bool) -> dict[str, Any]:
        out = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum,
               "default": self.default}
        return _or_empty(out) if query and not self.required else out


@dataclasses.dataclass(frozen=True, kw_only=True)
class Flag(Field):
    default: bool = False

    def read(self, m: Mapping[str, Any], name: str, *, query: bool = False) -> bool:
        return validate.opt_bool(m, name, self.default)

    def base_schema(self, query: bool) -> dict[str, Any]:
        return {**(QUERY_BOOL if query else JSON_BOOL), "default": self.default}


@dataclasses.dataclass(frozen=True, kw_only=True)
class When(Field):
    """ISO 8601 (UTC unless an offset is given) or a YYYY-MM-DD date."""

    def read(self, m: Mapping[str, Any], name: str, *,
             query: bool = False) -> dt.datetime | None:
        out = validate.opt_datetime(m, name)
        if self.required and out is None:
            raise bad_request(name, "is required")
        return out

    def base_schema(self, query: bool) -> dict[str, Any]:
        # an empty query parameter is an absent one
        return {"anyOf": [DATE_TIME, {"const": ""}]} if query else dict(DATE_TIME)


@dataclasses.dataclass(frozen=True, kw_only=True)
class IntList(Field):
    allowed: tuple[int, ...] = ()

    def read(self, m: Mapping[str, Any], name: str, *, query: bool = False) -> list[int]:
        return validate.int_list(m, name, self.allowed)

    def base_schema(self, query: bool) -> dict[str, Any]:
        items = {"type": "integer", "enum": list(self.allowed)}
        if query:
            return {"type": "string", "description": "comma-separated"}
        return {"type": "array", "items": items, "maxItems": 64}


def _declare(f: Field) -> Any:
    """A dataclass field read and described by ``f``, defaulting to its default."""
    return dataclasses.field(default=getattr(f, "default", None), metadata={"field": f})


def text(**kw: Any) -> Any:
    return _declare(Text(**kw))


def number(**kw: Any) -> Any:
    return _declare(Number(**kw))


def integer(**kw: Any) -> Any:
    return _declare(Integer(**kw))


def flag(**kw: Any) -> Any:
    return _declare(Flag(**kw))


def when(**kw: Any) -> Any:
    return _declare(When(**kw))


def int_list(**kw: Any) -> Any:
    f = IntList(**kw)
    return dataclasses.field(default_factory=list, metadata={"field": f})


class Ask:
    """A request declared once. Subclasses are frozen, keyword-only dataclasses whose
    fields are declared with ``text()`` and its kin."""

    RULES: ClassVar[tuple[dict[str, Any], ...]] = ()  # cross-field rules as JSON Schema

    @classmethod
    def declared(cls) -> dict[str, Field]:
        """The request's fields, by name (worked out once per class)."""
        out = cls.__dict__.get("_declared")
        if out is None:
            out = {f.name: f.metadata["field"]
                   for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                   if "field" in f.metadata}
            cls._declared = out  # type: ignore[attr-defined]
        return out

    @classmethod
    def read(cls, m: Mapping[str, Any], *, query: bool = False) -> Self:
        """The request from a JSON body or a query string (``query``), each field read
        and then the rules between them checked (a 400 naming the field)."""
        ask = cls(**cls.parts(m, query),
                  **{name: f.read(m, name, query=query) for name, f in cls.declared().items()})
        ask.check()
        return ask

    @classmethod
    def parts(cls, m: Mapping[str, Any], query: bool) -> dict[str, Any]:
        """What the request holds beside its own fields, read first (a contract)."""
        return {}

    def check(self) -> None:
        """The rules that tie fields together (a 400 naming the field)."""

    @classmethod
    def properties(cls, query: bool = False) -> dict[str, dict[str, Any]]:
        out = {}
        for name, f in cls.declared().items():
            if f.hidden:
                continue
            s = f.schema(query)
            out[name] = s if f.required or query else null(s)
        return out

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The request body as JSON Schema: a null field is an absent one."""
        out: dict[str, Any] = {"type": "object", "properties": cls.properties()}
        required = [n for n, f in cls.declared().items() if f.required]
        if required:
            out["required"] = required
        if cls.RULES:
            out["allOf"] = list(cls.RULES)
        return out

    @classmethod
    def parameters(cls) -> list[dict[str, Any]]:
        """The request as OpenAPI query parameters."""
        return [{"name": name, "in": "query", "required": f.required,
                 "schema": f.schema(query=True)}
                for name, f in cls.declared().items() if not f.hidden]

    def given(self) -> dict[str, Any]:
        """The fields that differ from their defaults (what a forwarded body needs)."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if "field" not in f.metadata:
                continue
            v = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING
                else dataclasses.MISSING)
            if v != default:
                out[f.name] = v
        return out
