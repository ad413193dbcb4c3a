"""The planner: asks a model (or the playbook) for a plan, repairs it, and picks among an ensemble.

No database writes happen here: ``plan_task`` returns a ``PlanOutcome`` holding
the plan and a record of every model call, and the services in
``runs.lifecycle.planning`` / ``runs.lifecycle.replan`` store them in one
transaction. That keeps slow network calls outside every transaction.

The repair loop (``plan_with_model``):
1. Ask for a plan (structured output against the plan's JSON Schema).
2. Parse and validate it against the tool registry (unknown tools, bad params,
   cycles, references...). A refusal or a provider error ends this model's turn.
3. Invalid: feed every problem back as the next user message, up to
   ``repair_rounds`` times; still invalid: the outcome says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from django.conf import settings

from runs.planning.attempts import (
    CallRecord,
    PlanOutcome,
    ask_model,
    check_plan,
    merge_kept,
    plan_confidence,
    syntax_problem,
)
from runs.planning.handoff import (
    Handoff,
    expand_handoff,
    handoff_json_schema,
    handoff_record,
    is_handoff,
)
from runs.planning.iterative import step_with_model
from runs.planning.options import PlannerOptions
from runs.planning.prompt import PlanningContext, repair_message, system_prompt, task_message
from runs.planning.providers import get_provider
from runs.planning.providers.base import Provider, ProviderError
from runs.planning.providers.playbook import plan_from_playbook
from runs.planning.providers.playbook.fallback import replan_with_fallbacks
from runs.planning.questions import ask_json_schema, take_question
from runs.planning.reuse import reuse_plan
from runs.planning.schema import plan_json_schema
from runs.tools.base import ToolSpec
from runs.tools.registry import load_tool_specs


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
            schema=handoff_json_schema(
                ask_json_schema() if context.may_ask else plan_json_schema(), context.workflows
            ),
            schema_name="plan",
            options=options,
            purpose=purpose if attempt == 1 else "repair",
            attempt=attempt,
        )
        if reply is None:
            return outcome
        if reply.data is None:
            syntax = syntax_problem(reply.text)
            outcome.reason = f"{label} answered with something that is not a JSON plan: {syntax}"
            feedback = repair_message([], syntax=syntax)
        elif context.may_ask and take_question(outcome, label, reply.data):
            return outcome
        elif (handoff := _handoff(reply.data)) is not None and handoff.problems:
            outcome.reason = (
                f"{label}'s handoff to workflow {handoff.workflow} is not usable: "
                f"{handoff.problems[0].message}"
            )
            feedback = repair_message(handoff.problems)
        else:
            data = reply.data if handoff is None else handoff.document
            validated = check_plan(data, tools=tools, mode=mode, kept=kept)
            outcome.document = merge_kept(data, kept) if kept else data
            outcome.validated = validated
            outcome.handoff = handoff_record(handoff, validated) if handoff else None
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


def _handoff(data: Any) -> Handoff | None:
    """The answer's handoff, instantiated (None when the answer is a plan)."""
    return expand_handoff(data) if is_handoff(data) else None


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

    tools = tools if tools is not None else load_tool_specs()
    if options.planner == "manual":
        return PlanOutcome(
            ok=False,
            planner="manual",
            mode=context.mode,
            reason="this task is planned by hand: submit a hand-written plan",
        )
    if options.planner == "playbook":
        if context.replan is not None:  # offline: the failed steps' declared fallbacks
            return replan_with_fallbacks(context, tools=tools, kept=kept or [])
        return plan_from_playbook(context, tools=tools)
    reused = reuse_plan(context, tools=tools) if purpose == "plan" and kept is None else None
    if reused is not None:  # an approved plan for a near-identical task: no model call
        return reused
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
                ok=False,
                planner=member.planner,
                mode=context.mode,
                reason=exc.message,
                failure=exc.kind,
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
