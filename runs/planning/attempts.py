"""One model attempt at a plan: the call, its record, and the outcome every planner returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from runs.planning.providers.base import ModelReply, ModelRequest, ProviderError, strip_fence
from runs.planning.validation import PlanProblem, ValidatedPlan, validate_with_registry
from runs.telemetry import tracing
from runs.textdata import TextDataError, parse_json
from runs.tools.base import ToolSpec

# PlanOutcome.failure of a playbook planner that found no stored plan similar enough.
NO_MATCH = "no_match"


@dataclass
class CallRecord:
    """One model call as it will be stored (redaction happens when it is stored)."""

    provider: str
    model: str
    purpose: str
    attempt: int
    prompt: list[dict[str, str]]
    response: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    refusal: str = ""
    error: str = ""
    stored_id: int | None = None  # the LlmCall row, once stored (see CALL_SINK)
    step: str = ""  # the step an llm tool call answers for (runs.llmtools); "" when planning

    @property
    def ok(self) -> bool:
        return not self.error and not self.refusal


# Who stores each model call the moment it returns (set by the planning service in the
# planner's thread), so a worker that dies before the outcome is stored loses no call.
CALL_SINK: ContextVar[Callable[[CallRecord], None] | None] = ContextVar("call_sink", default=None)


def _answered(record: CallRecord) -> None:
    tracing.chat_done(**{k: getattr(record, k) for k in tracing.CHAT_FIELDS})
    sink = CALL_SINK.get()
    if sink is not None:
        sink(record)


@dataclass
class PlanOutcome:
    ok: bool
    planner: str  # who produced it: "openai/gpt-4.1-mini", "playbook:deploy"
    mode: str  # the mode the plan was made for (auto resolved to upfront or direct)
    document: Any = None
    validated: ValidatedPlan | None = None
    confidence: float | None = None
    reason: str = ""  # why there is no usable plan, or a note about the one there is
    # Why there is no plan when no document came back: NO_MATCH, or a ProviderError's kind.
    failure: str = ""
    # Step parameters rewritten from the task's own values (the playbook planner's ParamChange).
    substitutions: list[dict[str, str]] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    # Iterative mode: the model's answer (runs.planning.iterative.NextStep) and its stop flag.
    step: dict[str, Any] | None = None
    stop: bool = False
    # A model planner that reused an approved plan instead of calling the model: the case
    # ("run:12", "playbook:deploy") and the tokens the model would have used (an estimate).
    reused_from: str = ""
    saved_tokens: int = 0
    # The planner asked a question instead (runs.planning.questions.Question.as_dict).
    question: dict[str, Any] | None = None
    # The planner handed off to a workflow: {"workflow", "params", "steps"} (runs.planning.handoff).
    handoff: dict[str, Any] | None = None


def plan_confidence(validated: ValidatedPlan | None) -> float | None:
    """A plan is as sure as its least sure step; None when no step says."""
    if validated is None or validated.document is None:
        return None
    values = [s.confidence for s in validated.document.steps if s.confidence is not None]
    return min(values) if values else None


def check_plan(
    document: Any,
    *,
    tools: Mapping[str, ToolSpec],
    mode: str,
    kept: list[dict[str, Any]] | None = None,
) -> ValidatedPlan:
    """Validate a planner's document (kept steps first when replanning) plus the mode's rules."""
    if kept:
        document = merge_kept(document, kept)
    validated = validate_with_registry(document, tools=tools)
    doc = validated.document
    if mode == "direct" and doc is not None and len(doc.steps) != 1:
        problem = PlanProblem(
            "steps",
            "direct_mode",
            f"Direct mode runs exactly one tool call; the plan has {len(doc.steps)} steps.",
        )
        return ValidatedPlan(doc, [*validated.problems, problem], [])
    return validated


def ask_model(
    provider: Any,
    outcome: PlanOutcome,
    *,
    label: str,
    model: str,
    system: str,
    messages: list[dict[str, Any]],
    schema: dict[str, Any],
    schema_name: str,
    options: Any,
    purpose: str,
    attempt: int,
) -> ModelReply | None:
    """One model call, recorded on ``outcome``; None (with ``outcome.reason``) on an error or refusal."""
    record = CallRecord(
        provider=provider.name,
        model=model,
        purpose=purpose,
        attempt=attempt,
        prompt=[{"role": "system", "content": system}, *messages],
    )
    outcome.calls.append(record)
    try:
        reply = provider.complete(
            ModelRequest(
                system=system,
                messages=list(messages),
                schema=schema,
                schema_name=schema_name,
                model=model,
                temperature=options.temperature,
                max_tokens=options.max_tokens,
            )
        )
    except ProviderError as exc:
        record.error = exc.message
        record.latency_ms = exc.latency_ms
        _answered(record)
        outcome.reason = f"{label}: {exc.message}"
        outcome.failure = exc.kind
        return None
    _fill(record, reply)
    _answered(record)
    if reply.refusal:
        outcome.reason = f"{label} refused to plan: {reply.refusal}"
        return None
    return reply


def _fill(record: CallRecord, reply: ModelReply) -> None:
    record.model = reply.model or record.model
    record.response = reply.text
    record.tokens_in = reply.tokens_in
    record.tokens_out = reply.tokens_out
    record.latency_ms = reply.latency_ms
    record.refusal = reply.refusal


def syntax_problem(text: str) -> str:
    """Why a reply is not JSON, with the error's place inside the JSON (a fence removed)."""
    body = strip_fence(text)
    if not body.strip():
        return "the answer is empty"
    try:
        parse_json(body)
    except TextDataError as exc:
        where = f" at line {exc.line}, column {exc.column}" if exc.line is not None else ""
        return f"{exc.message}{where}"
    return "the answer is not a JSON object"


def merge_kept(document: Any, kept: list[dict[str, Any]]) -> Any:
    """The replanner's new steps after the finished steps it must keep (never re-run)."""
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
        return document
    kept_ids = {k["id"] for k in kept}
    # A model that repeats a finished step verbatim means "keep it"; drop the copy.
    new = [
        s
        for s in document["steps"]
        if not (isinstance(s, dict) and s.get("id") in kept_ids and _same_step(s, kept))
    ]
    return {**document, "steps": [*kept, *new]}


def _same_step(step: dict[str, Any], kept: list[dict[str, Any]]) -> bool:
    other = next(k for k in kept if k["id"] == step.get("id"))
    action = step.get("action", step.get("tool"))
    params = step.get("params", step.get("arguments", step.get("args", {})))
    return action == other["action"] and (params or {}) == (other.get("params") or {})
