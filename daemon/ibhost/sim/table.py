"""The message table: incoming message id -> handler.

Each subject module declares its own ``Routes``; ``handlers.py`` joins them into
one table (``HANDLERS``) that a session dispatches on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from .clientstate import Client
from .env import Gateway

Handler = Callable[[Gateway, Client, list[str]], Awaitable[None]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class HandlerEntry:
    name: str
    fn: Handler
    req_pos: int | None  # index of the request id field, for error replies


class Routes:
    """One subject's part of the table, filled with ``@routes(msg_id, name)``."""

    def __init__(self) -> None:
        self.entries: dict[int, HandlerEntry] = {}

    def __call__(self, msg_id: int, name: str, req_pos: int | None = None
                 ) -> Callable[[H], H]:
        def deco(fn: H) -> H:
            if msg_id in self.entries:
                raise ValueError(f"message id {msg_id} routed twice")
            self.entries[msg_id] = HandlerEntry(name, fn, req_pos)
            return fn

        return deco


def join(parts: Iterable[Routes]) -> Mapping[int, HandlerEntry]:
    """One table from the subjects' routes; a message id may appear only once."""
    table: dict[int, HandlerEntry] = {}
    for part in parts:
        for msg_id, entry in part.entries.items():
            if msg_id in table:
                raise ValueError(f"message id {msg_id} routed twice")
            table[msg_id] = entry
    return table
