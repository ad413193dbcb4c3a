"""The agent kind: a step done by a model calling tools in a bounded loop.

A step on an agent tool carries ``instruction`` (words) and ``tools`` (the names it
may call) in its params. The loop needs the providers, above the registry, so the
executor hands agent tools to ``runs.llmtools.agent``; this module knows the
config's shape only.

Config: ``max_iterations`` (model calls, default 8), ``max_tokens`` (the step's own
token budget over its model calls, default 20000), ``provider``, ``model``,
``temperature``, and ``recorded`` (the decisions the offline ``recorded``
provider gives, in order).
"""

from __future__ import annotations

from typing import Any

from runs.tools.base import ToolConfigError, ToolSpec

KIND = "agent"
CONFIG_KEYS = frozenset(
    {"max_iterations", "max_tokens", "provider", "model", "temperature", "recorded"}
)
MAX_ITERATIONS = 50
DEFAULT_ITERATIONS = 8
DEFAULT_TOKENS = 20_000
PARAMETERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "instruction": {"type": "string", "minLength": 1},
        "tools": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["instruction", "tools"],
}
CONFIG_HELP = (
    'Optional "max_iterations" (model calls, default 8, at most 50), "max_tokens" (the '
    'step\'s own token budget, default 20000), "provider", "model", "temperature", and '
    '"recorded" (the offline decisions). Steps give "instruction" and "tools" as params.'
)


def validate_config(config: dict[str, Any], *, parameters_schema: dict | None = None) -> list[str]:
    """Every problem with an agent config."""
    if not isinstance(config, dict):
        return ["config must be an object"]
    problems = [f"unknown key {k!r}" for k in sorted(set(config) - CONFIG_KEYS)]
    for key, top in (("max_iterations", MAX_ITERATIONS), ("max_tokens", 10_000_000)):
        value = config.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top
        ):
            problems.append(f"{key} must be a whole number from 1 to {top}")
    for key in ("provider", "model"):
        if key in config and not isinstance(config[key], str):
            problems.append(f"{key} must be text")
    if "recorded" in config and not isinstance(config["recorded"], list):
        problems.append("recorded must be a list of decisions")
    if isinstance(parameters_schema, dict):
        props = parameters_schema.get("properties")
        if not isinstance(props, dict) or not {"instruction", "tools"} <= set(props):
            problems.append("the parameters must include instruction and tools")
    return problems


def step_instruction(tool: Any, params: Any) -> tuple[str, list[str]] | None:
    """``(instruction, allowed tools)`` of a step on an agent tool, for the review page."""
    if tool is None or tool.kind != KIND or not isinstance(params, dict):
        return None
    tools = params.get("tools")
    names = [str(t) for t in tools] if isinstance(tools, list) else []
    return str(params.get("instruction", "")), names


async def invoke(spec: ToolSpec, params: dict[str, Any], idempotency_key: str | None = None) -> Any:
    """Refused: the loop needs the providers, so the executor calls ``runs.llmtools``."""
    raise ToolConfigError(
        f"tool {spec.name!r} is an agent tool: only the executor can run it (its loop calls a model)"
    )
