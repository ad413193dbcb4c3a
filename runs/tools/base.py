"""The contract between the executor and the tool kinds.

A kind is a module in ``runs/tools/kinds/`` exposing::

    async def invoke(spec: ToolSpec, params: dict[str, Any], idempotency_key: str | None) -> Any

``idempotency_key`` is the step's key (``Step.idempotency_key``): the same on
every call for one step of one run, retries and crash takeovers included, so the
tool can do the operation once per key; each kind hands it over in its own way.
It returns a JSON-serialisable result, raises ``ToolError`` on failure, and
must clean up fully when cancelled (``asyncio.CancelledError``): the executor
cancels the call on timeout and on run cancellation, so a shell kind kills its
whole process group there. The executor owns timeouts and retries; kinds don't.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolSpec:
    """An immutable snapshot of a Tool row, safe to pass across threads."""

    name: str
    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    parameters_schema: dict[str, Any] = field(default_factory=dict)
    timeout_seconds: float = 60.0
    max_retries: int = 0
    idempotent: bool = False
    # Only reads: nothing of its steps is ever rolled back.
    read_only: bool = False
    honours_idempotency_key: bool = False
    sensitive: bool = False
    enabled: bool = True
    # Evaluator checks of the result (runs/evaluation/checks.py); empty: no evaluation.
    checks: tuple[Any, ...] = ()
    # Resource lock templates every step of the tool takes (runs/tools/locks.py).
    locks: tuple[str, ...] = ()
    # The executor pool that calls the tool (``Tool.queue``); "": the run's own worker.
    queue: str = ""

    @classmethod
    def from_model(cls, tool: Any) -> ToolSpec:
        return cls(
            name=tool.name,
            kind=tool.kind,
            config=dict(tool.config or {}),
            parameters_schema=dict(tool.parameters_schema or {}),
            timeout_seconds=float(tool.timeout_seconds),
            max_retries=int(tool.max_retries),
            idempotent=bool(tool.idempotent),
            read_only=bool(getattr(tool, "read_only", False)),
            honours_idempotency_key=bool(tool.honours_idempotency_key),
            sensitive=bool(tool.sensitive),
            enabled=bool(tool.enabled),
            checks=tuple(getattr(tool, "checks", None) or ()),
            locks=tuple(getattr(tool, "locks", None) or ()),
            queue=str(getattr(tool, "queue", "") or ""),
        )

    @property
    def repeatable(self) -> bool:
        """Whether a second call for the same step does no harm: retries and crash takeovers.

        True for an idempotent tool, and for one that honours the idempotency key
        (it does the operation once per key, and every call of a step has the same key).
        """
        return self.idempotent or self.honours_idempotency_key


class ToolError(Exception):
    """A tool call failed; ``details`` (JSON) says how, e.g. exit code and stderr."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ToolConfigError(ToolError):
    """The tool row itself is misconfigured (bad kind config); retrying cannot help."""


# Shared by the kinds: "{name}" placeholders in config text, and parameter values as text.
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def param_text(value: Any) -> str:
    """A parameter value as text: strings as-is, anything else as compact JSON (``true``, ``[1,2]``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
