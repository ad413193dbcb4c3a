"""Which run and step the code is working for, for log lines (and spans) to say so.

Context variables, so asyncio tasks a run starts for its steps inherit the run's id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

RUN_ID: ContextVar[int | None] = ContextVar("telemetry_run_id", default=None)
STEP: ContextVar[str | None] = ContextVar("telemetry_step", default=None)


@contextmanager
def bound(*, run_id: int | None = None, step: str | None = None) -> Iterator[None]:
    """Within the block, log records carry ``run_id`` (and ``step``, a step's key)."""
    tokens: list[tuple[ContextVar[Any], Token[Any]]] = []
    if run_id is not None:
        tokens.append((RUN_ID, RUN_ID.set(run_id)))
    if step is not None:
        tokens.append((STEP, STEP.set(step)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
