"""The tool registry: dispatch on a tool's kind, validate its config, load specs from the DB.

The executor calls ``invoke_tool``; services call ``load_tool_specs`` (a snapshot of
the Tool rows, disabled ones included: callers decide what "disabled" means).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from types import ModuleType
from typing import Any

import jsonschema

from runs.models import Tool
from runs.tools.base import ToolConfigError, ToolSpec
from runs.tools.kinds import agent, http, llm, mcp, python, shell

KINDS: dict[str, ModuleType] = {
    "shell": shell,
    "http": http,
    "python": python,
    "llm": llm,
    "agent": agent,
    "mcp": mcp,
}


class Deadlined:
    """An interceptor's stand-in call that runs under a deadline of its own, not the tool's.

    An injected timeout (``runs.evals.faults``) blocks past this short deadline, so the
    caller's own timeout handling (expiry, retry, failure) acts without a long wait.
    """

    __slots__ = ("call", "timeout_seconds")

    def __init__(self, call: Coroutine[Any, Any, Any], timeout_seconds: float) -> None:
        self.call = call
        self.timeout_seconds = timeout_seconds

    def __await__(self) -> Generator[Any, None, Any]:
        return self.call.__await__()


# Fault injection for evaluations (runs.evals.faults): when set, asked first on every call;
# a coroutine (or a Deadlined one) it returns stands in for the tool's. Empty in normal operation.
Interceptor = Callable[[ToolSpec, dict[str, Any]], Coroutine[Any, Any, Any] | Deadlined | None]
INTERCEPTORS: list[Interceptor] = []


def call_timeout(call: Awaitable[Any], spec: ToolSpec) -> float:
    """The deadline ``call`` (from ``invoke_tool``) runs under: its own when Deadlined, else the tool's."""
    return call.timeout_seconds if type(call) is Deadlined else spec.timeout_seconds


def get_kind(kind: str) -> ModuleType:
    try:
        return KINDS[kind]
    except (KeyError, TypeError):
        raise ToolConfigError(f"unknown tool kind {kind!r} (known: {', '.join(KINDS)})") from None


def invoke_tool(
    spec: ToolSpec, params: dict[str, Any], idempotency_key: str | None = None
) -> Coroutine[Any, Any, Any] | Deadlined:
    """Call the tool once: await what this returns. Params are schema-validated; timeouts are the caller's.

    ``idempotency_key`` is the step's key, handed to the tool the way its kind does
    (shell: ``PLANNERWEB_IDEMPOTENCY_KEY``, http: ``Idempotency-Key``, python: the
    ``idempotency_key`` argument). A plain function handing back the kind's coroutine,
    not a coroutine of its own: every await of a step's tool passes one frame fewer.
    An unknown kind raises here.
    """
    for intercept in INTERCEPTORS:
        if (injected := intercept(spec, params)) is not None:
            return injected
    return get_kind(spec.kind).invoke(spec, params, idempotency_key)


def config_help() -> dict[str, str]:
    """What a tool's config holds, per kind (the admin's help for the config field)."""
    return {kind: module.CONFIG_HELP for kind, module in KINDS.items()}


def validate_tool_config(
    kind: str, config: Any, *, parameters_schema: dict[str, Any] | None = None
) -> list[str]:
    """Problems with ``config`` for ``kind``; with the schema, placeholders are checked too."""
    try:
        module = get_kind(kind)
    except ToolConfigError as exc:
        return [exc.message]
    return list(module.validate_config(config, parameters_schema=parameters_schema))


def validate_parameters_schema(schema: Any) -> list[str]:
    """Problems with a tool's parameters schema: it must be a valid JSON Schema of type object."""
    if not isinstance(schema, dict):
        return ["the parameters schema must be an object"]
    meta = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)
    problems = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(meta.iter_errors(schema), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if schema.get("type") != "object":
        problems.append('the parameters schema must have "type": "object"')
    return problems


def load_tool_specs(names: Iterable[str] | None = None) -> dict[str, ToolSpec]:
    """Snapshot Tool rows (all of them, or those named) as ``{name: ToolSpec}``."""

    rows = Tool.objects.all()
    if names is not None:
        rows = rows.filter(name__in=list(names))
    return {tool.name: ToolSpec.from_model(tool) for tool in rows}
