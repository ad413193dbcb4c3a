"""The planner: asks a model (or the playbook) for a plan, repairs it, and picks among an ensemble.

No database writes happen here: ``plan_task`` returns a ``PlanOutcome`` holding
the plan and a record of every model call, and the services in
``runs.planning.service`` / ``runs.planning.replan`` store them in one
transaction. That keeps slow network calls outside every transaction.

The repair loop (``plan_with_model``):
1. Ask for a plan (structured output against the plan's JSON Schema).
2. Parse and validate it against the tool registry (unknown tools, bad params,
   cycles, references...). A refusal or a provider error ends this model's turn.
3. Invalid: feed every problem back as the next user message, up to
   ``repair_rounds`` times; still invalid: the outcome says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings

from runs.planning.options import PlannerOptions
from runs.planning.prompt import PlanningContext, repair_message, system_prompt, task_message
from runs.planning.providers import get_provider
from runs.planning.providers.base import ModelReply, ModelRequest, Provider, ProviderError
from runs.planning.schema import plan_json_schema
from runs.planning.validation import PlanProblem, ValidatedPlan, validate_with_registry
from runs.tools.base import ToolSpec


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

    @property
    def ok(self) -> bool:
        return not self.error and not self.refusal


@dataclass
class PlanOutcome:
    ok: bool
    planner: str  # who produced it: "openai/gpt-4.1-mini", "playbook:deploy"
    mode: str  # the mode the plan was made for (auto resolved to upfront or direct)
    document: Any = None
    validated: ValidatedPlan | None = None
    confidence: float | None = None
    reason: str = ""  # why there is no usable plan, or a note about the one there is
    calls: list[CallRecord] = field(default_factory=list)
    # Iterative mode: the model's answer (runs.planning.iterative.NextStep) and its stop flag.
    step: dict[str, Any] | None = None
    stop: bool = False


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


def plan_with_model(
    provider: Provider,
    context: PlanningContext,
    options: PlannerOptions,
    *,
    tools: Mapping[str, ToolSpec],
    purpose: str = "plan",
    kept: list[dict[str, Any]] | None = None,
) -> PlanOutcome:
    """One model's attempt at a plan, with up to ``options.repair_rounds`` repair rounds."""
    if context.mode == "iterative":  # one step at a time: runs.planning.iterative
        from runs.planning.iterative import step_with_model

        return step_with_model(provider, context, options, tools=tools, purpose=purpose, kept=kept)
    model = options.model or provider.default_model
    label = f"{provider.name}/{model}"
    mode = "direct" if context.mode == "direct" else "upfront"
    system = system_prompt(context)
    messages = [{"role": "user", "content": task_message(context)}]
    outcome = PlanOutcome(ok=False, planner=label, mode=mode)
    for attempt in range(1, options.repair_rounds + 2):
        reply = ask_model(
            provider,
            outcome,
            label=label,
            model=model,
            system=system,
            messages=messages,
            schema=plan_json_schema(),
            schema_name="plan",
            options=options,
            purpose=purpose if attempt == 1 else "repair",
            attempt=attempt,
        )
        if reply is None:
            return outcome
        if reply.data is None:
            syntax = _syntax_problem(reply.text)
            outcome.reason = f"{label} answered with something that is not a JSON plan: {syntax}"
            feedback = repair_message([], syntax=syntax)
        else:
            validated = check_plan(reply.data, tools=tools, mode=mode, kept=kept)
            outcome.document = merge_kept(reply.data, kept) if kept else reply.data
            outcome.validated = validated
            if validated.is_valid:
                outcome.ok = True
                outcome.reason = ""
                outcome.confidence = plan_confidence(validated)
                if context.mode == "auto" and validated.document is not None:
                    outcome.mode = "direct" if len(validated.document.steps) == 1 else "upfront"
                return outcome
            count = len(validated.problems)
            outcome.reason = (
                f"{label}'s plan is still invalid after {attempt - 1} repair round(s) "
                f"({count} problem{'s' * (count != 1)}): {validated.problems[0].message}"
            )
            feedback = repair_message(validated.problems)
        messages += [
            {"role": "assistant", "content": reply.text or "(empty)"},
            {"role": "user", "content": feedback},
        ]
    return outcome


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
        outcome.reason = f"{label}: {exc.message}"
        return None
    _fill(record, reply)
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


def _syntax_problem(text: str) -> str:
    if not text.strip():
        return "the answer is empty"
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    return "the answer is not a JSON object"


def chain_members(options: PlannerOptions) -> list[PlannerOptions]:
    """The ensemble from settings, each member inheriting the task's other options."""
    members = []
    for item in settings.PLANNERWEB_PLANNER_CHAIN:
        members.append(replace(options, planner=item["provider"], model=item.get("model", "")))
    return members


def plan_task(
    context: PlanningContext,
    options: PlannerOptions,
    *,
    tools: Mapping[str, ToolSpec] | None = None,
    purpose: str = "plan",
    kept: list[dict[str, Any]] | None = None,
) -> PlanOutcome:
    """A plan for ``context`` from the planner ``options`` name; never raises for model trouble."""
    from runs.tools.registry import load_tool_specs

    tools = tools if tools is not None else load_tool_specs()
    if options.planner == "manual":
        return PlanOutcome(
            ok=False,
            planner="manual",
            mode=context.mode,
            reason="this task is planned by hand: submit a hand-written plan",
        )
    if options.planner == "playbook":
        from runs.planning.providers.playbook import plan_from_playbook

        if kept:
            return PlanOutcome(
                ok=False,
                planner="playbook",
                mode=context.mode,
                reason="the playbook planner cannot replan: a stored plan does not know this failure",
            )
        return plan_from_playbook(context, tools=tools)
    members = chain_members(options) if options.planner == "chain" else [options]
    if not members:
        return PlanOutcome(
            ok=False, planner="chain", mode=context.mode, reason="PLANNERWEB_PLANNER_CHAIN is empty"
        )
    return run_chain(context, members, tools=tools, purpose=purpose, kept=kept)


def run_chain(
    context: PlanningContext,
    members: list[PlannerOptions],
    *,
    tools: Mapping[str, ToolSpec],
    purpose: str = "plan",
    kept: list[dict[str, Any]] | None = None,
    providers: Mapping[str, Provider] | None = None,
) -> PlanOutcome:
    """Try each member in turn; the next one plans when a plan is invalid or not sure enough.

    With one member this is the plain repair loop. With several, the first valid
    plan at or above ``PLANNERWEB_ENSEMBLE_MIN_CONFIDENCE`` wins; when none
    reaches it, the most confident valid plan does, with a note saying so.
    """
    threshold = settings.PLANNERWEB_ENSEMBLE_MIN_CONFIDENCE
    calls: list[CallRecord] = []
    best: PlanOutcome | None = None
    last: PlanOutcome | None = None
    for member in members:
        try:
            provider = (providers or {}).get(member.planner) or get_provider(member.planner)
        except ProviderError as exc:
            last = PlanOutcome(
                ok=False, planner=member.planner, mode=context.mode, reason=exc.message
            )
            continue
        outcome = plan_with_model(
            provider, context, member, tools=tools, purpose=purpose, kept=kept
        )
        calls += outcome.calls
        last = outcome
        if not outcome.ok:
            continue
        sure = outcome.confidence is None or outcome.confidence >= threshold
        if sure or len(members) == 1:
            outcome.calls = calls
            return outcome
        if best is None or (outcome.confidence or 0) > (best.confidence or 0):
            best = outcome
    if best is not None:
        best.calls = calls
        best.reason = (
            f"no planner reached confidence {threshold:g}; using the most confident plan "
            f"({best.planner}, {best.confidence:g})"
        )
        return best
    assert last is not None
    last.calls = calls
    if len(members) > 1:
        last.reason = f"every planner of the chain failed; last: {last.reason}"
    return last
