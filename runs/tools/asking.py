"""A tool call asking a human for input mid-call (MCP elicitation), and who answers it.

A kind never opens review items itself (that is orchestration, above it): the
executor sets ``current_asker`` around each step's call, and a kind whose server
asks for input awaits it. Outside a step (discovery, a shell) nothing is set
and the kind refuses the request.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Action = Literal["accept", "decline", "cancel"]
ACTIONS: tuple[Action, ...] = ("accept", "decline", "cancel")


@dataclass(frozen=True)
class Question:
    """What the server asks: its message and the JSON Schema of the form it wants filled."""

    server: str
    tool: str
    message: str
    schema: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """The human's answer: ``accept`` with ``content`` matching the schema, or decline, or cancel."""

    action: Action
    content: dict[str, Any] | None = None


class Asker(Protocol):
    """Waits for a human's answer to one question of the current step's call."""

    async def __call__(self, question: Question) -> Answer: ...


current_asker: ContextVar[Asker | None] = ContextVar("current_asker", default=None)
