"""The message table: incoming message id -> handler, filled by the subject modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import Simulator
    from .session import Session


@dataclass(frozen=True)
class HandlerEntry:
    name: str
    fn: Callable[[Simulator, Session, list[str]], Awaitable[None]]
    req_pos: int | None  # index of the request id field, for error replies


HANDLERS: dict[int, HandlerEntry] = {}


def handles(
    msg_id: int, name: str, req_pos: int | None = None
) -> Callable[[Callable[[Simulator, Session, list[str]], Awaitable[None]]],
              Callable[[Simulator, Session, list[str]], Awaitable[None]]]:
    def deco(
        fn: Callable[[Simulator, Session, list[str]], Awaitable[None]]
    ) -> Callable[[Simulator, Session, list[str]], Awaitable[None]]:
        HANDLERS[msg_id] = HandlerEntry(name, fn, req_pos)
        return fn

    return deco
