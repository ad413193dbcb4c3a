"""The llm kind: a tool whose program is a focused prompt to a language model.

This module only knows the config's shape and renders the prompt; the call
itself needs the providers, which sit above the tool registry, so the executor
hands ``llm`` tools to ``runs.llmtools`` instead of ``invoke`` below.

Config: ``prompt`` (text with ``{param}`` placeholders over the step's params;
a param holding a reference carries an earlier step's result), optional
``system``, ``output_schema`` (a JSON Schema the answer must follow; without
it the answer is text), ``provider``, ``model`` (empty: the deployment's
planner and model), ``temperature``, ``max_tokens``, and ``recorded`` (the
answer the offline ``recorded`` provider gives, for demos and tests).
"""

from __future__ import annotations

from typing import Any

import jsonschema

from runs.tools.base import PLACEHOLDER, ToolConfigError, ToolSpec, param_text

KIND = "llm"
CONFIG_KEYS = frozenset(
    {
        "prompt",
        "system",
        "output_schema",
        "provider",
        "model",
        "temperature",
        "max_tokens",
        "recorded",
    }
)
MAX_TOKENS_LIMIT = 128_000
CONFIG_HELP = (
    '"prompt": the text sent to the model, with {param} placeholders filled from the step\'s '
    'params; optional "system", "output_schema" (a JSON Schema the answer must follow; '
    'without it the answer is text), "provider" and "model" (default: the deployment\'s), '
    '"temperature", "max_tokens", and "recorded" (the answer of the offline "recorded" '
    'provider). Example: {"prompt": "Summarise: {log}", "max_tokens": 400}'
)


def validate_config(config: dict[str, Any], *, parameters_schema: dict | None = None) -> list[str]:
    """Every problem with an llm config; with the tool's schema, also unknown placeholders."""
    if not isinstance(config, dict):
        return ["config must be an object"]
    problems = [f"unknown key {k!r}" for k in sorted(set(config) - CONFIG_KEYS)]
    prompt = config.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append("prompt is required: the text sent to the model")
        prompt = ""
    for key in ("system", "provider", "model"):
        if key in config and not isinstance(config[key], str):
            problems.append(f"{key} must be text")
    if "output_schema" in config:
        problems += _schema_problems(config["output_schema"])
    temperature = config.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        problems.append("temperature must be a number from 0 to 2")
    limit = config.get("max_tokens")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_TOKENS_LIMIT
    ):
        problems.append(f"max_tokens must be a whole number from 1 to {MAX_TOKENS_LIMIT}")
    if isinstance(parameters_schema, dict):
        props = parameters_schema.get("properties")
        known = set(props) if isinstance(props, dict) else set()
        used = set(PLACEHOLDER.findall(prompt + str(config.get("system") or "")))
        problems += [f"placeholder {{{name}}} is not a parameter" for name in sorted(used - known)]
    return problems


def _schema_problems(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return ["output_schema must be a JSON Schema object"]
    meta = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)
    return [f"output_schema: {error.message}" for error in meta.iter_errors(schema)]


def render(template: str, params: dict[str, Any]) -> str:
    """``template`` with each ``{name}`` replaced by the param's text; unknown names stay as written."""

    def fill(match: Any) -> str:
        name = match.group(1)
        return param_text(params[name]) if name in params else str(match.group(0))

    return PLACEHOLDER.sub(fill, template)


def rendered_prompt(config: dict[str, Any], params: dict[str, Any]) -> str:
    """The prompt a step sends (the review page shows it before the step runs)."""
    prompt = config.get("prompt") if isinstance(config, dict) else None
    return render(prompt, params) if isinstance(prompt, str) else ""


def step_prompt(tool: Any, params: Any) -> str:
    """The rendered prompt of a step on ``tool`` (a Tool row), or "" when it is no llm tool.

    References to earlier results stay as written: they are filled when the step runs.
    """
    if tool is None or tool.kind != KIND or not isinstance(params, dict):
        return ""
    return rendered_prompt(tool.config or {}, params)


async def invoke(spec: ToolSpec, params: dict[str, Any], idempotency_key: str | None = None) -> Any:
    """Refused: a model call needs the providers, so the executor calls ``runs.llmtools``."""
    raise ToolConfigError(
        f"tool {spec.name!r} is an llm tool: only the executor can call it (through its model call)"
    )
