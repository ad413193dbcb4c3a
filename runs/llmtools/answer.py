"""One ``llm`` step's answer: render the prompt, ask the model, check and repair, record each call.

Runs in a helper thread (never on the executor's event loop); each model call
is stored the moment it returns (an ``LlmCall`` of purpose ``tool`` and its
``planner.call`` event naming the step), so the run's token and cost budgets
count it and a crash loses no call.

1. Render ``prompt`` (and ``system``) over the step's resolved params.
2. Ask the provider for structured output: the tool's ``output_schema``, or for
   a text answer ``{"answer": "<text>"}`` so every provider takes one path.
3. An answer that is not JSON or breaks the schema goes back to the model with
   the problems, up to ``PLANNERWEB_PLANNER_REPAIR_ROUNDS`` times.
4. A refusal, a provider error or an answer still invalid is a ``ToolError``
   (a bad provider name or a missing key: ``ToolConfigError``, never retried).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jsonschema
from django.conf import settings
from django.db import transaction

from runs.llmtools.recorded import NAME as RECORDED
from runs.llmtools.recorded import RecordedProvider
from runs.models import TranscriptEvent
from runs.planning.accounting import record_calls
from runs.planning.attempts import CallRecord, syntax_problem
from runs.planning.providers import LLM_PROVIDERS, get_provider
from runs.planning.providers.base import ModelReply, ModelRequest, Provider, ProviderError
from runs.statemachine import append_events
from runs.telemetry import tracing
from runs.tools.base import ToolConfigError, ToolError, ToolSpec
from runs.tools.kinds.llm import render

TEXT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
SYSTEM = (
    "You carry out one step of an automated plan. Do exactly what the prompt asks; "
    "answer with JSON that follows the given schema and nothing else."
)
DEFAULT_MAX_TOKENS = 1024


@dataclass(frozen=True)
class LlmAsk:
    """What one ``llm`` step asks, resolved from the tool's config and the step's params."""

    provider: str
    model: str
    system: str
    prompt: str
    schema: dict[str, Any] | None
    temperature: float | None
    max_tokens: int
    schema_name: str = ""  # "": "output" with a schema, "answer" without


def ask_of(spec: ToolSpec, params: dict[str, Any]) -> LlmAsk:
    """The provider, model and rendered texts of a step (no call made)."""
    config = spec.config
    provider = provider_name(config)
    return LlmAsk(
        provider=provider,
        model=model_name(config, provider),
        system=render(str(config.get("system") or SYSTEM), params),
        prompt=render(str(config.get("prompt") or ""), params),
        schema=config.get("output_schema"),
        temperature=config.get("temperature"),
        max_tokens=int(config.get("max_tokens") or DEFAULT_MAX_TOKENS),
    )


def model_name(config: dict[str, Any], provider: str) -> str:
    """The tool's model; else the deployment's planner model when it is that provider's; else ""."""
    if config.get("model"):
        return str(config["model"])
    if provider == settings.PLANNERWEB_PLANNER:
        return str(settings.PLANNERWEB_PLANNER_MODEL or "")
    return ""  # the provider's own default


def provider_name(config: dict[str, Any]) -> str:
    """The tool's provider; else the deployment's planner when it is a model, else offline.

    An offline deployment (the playbook planner) answers from the tool's recorded
    answer when it has one, so the demo runs without a key.
    """
    if config.get("provider"):
        return str(config["provider"])
    if settings.PLANNERWEB_PLANNER in LLM_PROVIDERS:
        return str(settings.PLANNERWEB_PLANNER)
    return RECORDED if "recorded" in config else "openai"


def answer(spec: ToolSpec, params: dict[str, Any], *, run_id: int, step: str) -> Any:
    """The step's result: the model's text, or its JSON when the tool has an output schema."""
    ask = ask_of(spec, params)
    provider = provider_for(ask.provider, spec.config)
    model = ask.model if ask.provider != RECORDED else provider.default_model
    model = model or provider.default_model
    messages = [{"role": "user", "content": ask.prompt}]
    rounds = max(0, int(settings.PLANNERWEB_PLANNER_REPAIR_ROUNDS))
    problem = ""
    for attempt in range(1, rounds + 2):
        reply = call_model(
            provider, ask, model, messages, run_id=run_id, step=step, attempt=attempt
        )
        value, problem = _read(reply, ask.schema)
        if not problem:
            return value
        messages += [
            {"role": "assistant", "content": reply.text or "(empty)"},
            {"role": "user", "content": f"Your answer is not usable: {problem}. Answer again."},
        ]
    raise ToolError(
        f"the model's answer is still invalid after {rounds} repair round(s): {problem}",
        details={"provider": ask.provider, "model": model},
    )


def provider_for(name: str, config: dict[str, Any]) -> Provider:
    if name == RECORDED:
        return RecordedProvider(config.get("recorded"))
    try:
        return get_provider(name)
    except ProviderError as exc:
        raise ToolConfigError(exc.message) from None


def call_model(
    provider: Provider,
    ask: LlmAsk,
    model: str,
    messages: list[dict[str, str]],
    *,
    run_id: int,
    step: str,
    attempt: int,
    purpose: str = "tool",
) -> ModelReply:
    """One model call, stored before its answer is used; errors and refusals raise."""
    record = CallRecord(
        provider=provider.name,
        model=model,
        purpose=purpose,
        attempt=attempt,
        prompt=[{"role": "system", "content": ask.system}, *messages],
        step=step,
    )
    started = time.monotonic()
    try:
        reply = provider.complete(
            ModelRequest(
                system=ask.system,
                messages=list(messages),
                schema=ask.schema if ask.schema is not None else TEXT_SCHEMA,
                schema_name=ask.schema_name or ("output" if ask.schema is not None else "answer"),
                model=model,
                temperature=ask.temperature,
                max_tokens=ask.max_tokens,
            )
        )
    except ProviderError as exc:
        record.error = exc.message
        record.latency_ms = exc.latency_ms or int((time.monotonic() - started) * 1000)
        _store(run_id, record)
        error = ToolConfigError if exc.kind == "config" else ToolError
        raise error(exc.message, details={"provider": provider.name, "kind": exc.kind}) from None
    record.model = reply.model or model
    record.response = reply.text
    record.tokens_in, record.tokens_out = reply.tokens_in, reply.tokens_out
    record.latency_ms = reply.latency_ms
    record.refusal = reply.refusal
    _store(run_id, record)
    if reply.refusal:
        raise ToolError(
            f"the model declined: {reply.refusal}",
            details={"provider": provider.name, "refusal": reply.refusal},
        )
    return reply


def _read(reply: ModelReply, schema: dict[str, Any] | None) -> tuple[Any, str]:
    """``(value, "")`` for a usable answer, else ``(None, why not)``."""
    if reply.data is None:
        if schema is None and reply.text.strip():
            return reply.text, ""  # a model that answered in plain text
        return None, syntax_problem(reply.text)
    if schema is None:
        data = reply.data
        if isinstance(data, dict) and isinstance(data.get("answer"), str):
            return data["answer"], ""
        return None, 'the answer must be {"answer": "<text>"}'
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(reply.data),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return None, f"it does not follow the output schema: {where}: {errors[0].message}{more}"
    return reply.data, ""


def _store(run_id: int, record: CallRecord) -> None:
    """Store the call with its event, and mark it as a ``chat`` span under its step's span."""
    tracing.chat_done(**{k: getattr(record, k) for k in tracing.CHAT_FIELDS})
    with transaction.atomic():
        append_events(
            run_id, record_calls(run_id=run_id, calls=[record], role=TranscriptEvent.Role.EXECUTOR)
        )
