"""Iterative mode: one model call per step; the executor runs it and the result feeds the next call.

Each call answers ``{thought, next_step, tool, arguments, stop, confidence}``
(``NextStep``, sent as the provider's structured-output schema). A step becomes
a new plan version: the finished steps kept (stored succeeded, never re-run)
plus the new one, with its parent and a diff (``added: [step-n]``). New versions
rather than steps appended to the current one, because a version is immutable
once written: an approved or audited plan never changes under the reviewer,
and the run page shows each step's arrival as a diff like any replan.

The loop, driven by the executor's hook (``RunExecutor._next_step``):
1. The first step comes from ``run_plan`` like any plan (``plan_task`` routes
   iterative contexts to ``step_with_model``).
2. When the current version's steps have succeeded, ``next_step_after_success``
   asks for the next step with every step so far and its result; the answer is
   repaired like a plan when invalid.
3. ``stop: true`` without a tool ends the run ``succeeded``; with a tool, that
   step is the last one. ``PLANNERWEB_ITERATIVE_MAX_STEPS`` (or the task's
   ``max_steps``) bounds the loop: reaching it without ``stop`` fails the run.
4. A failed step goes to ``replan_after_failure`` as usual, which hands
   iterative tasks to ``next_step_after_failure``: the model sees the error and
   picks the next step; each such call spends one of ``max_replans``.
5. While the run has questions left, the model may answer ``{"ask", "options"}``
   instead of a step (before the first one or after any that succeeded): the run
   waits ``awaiting_input`` holding no worker, and the answer (with every earlier
   one) is in the next call's message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runs.events import PlannerStep
from runs.models import Plan, TranscriptEvent
from runs.planning.attempts import PlanOutcome, ask_model, check_plan, merge_kept, syntax_problem
from runs.planning.handoff import (
    expand_handoff,
    handoff_json_schema,
    handoff_record,
    is_handoff,
    workflow_lines,
)
from runs.planning.options import PlannerOptions
from runs.planning.prompt import (
    IterationContext,
    PlanningContext,
    _json_lines,
    tool_catalogue,
)
from runs.planning.providers.base import Provider
from runs.planning.questions import ASK_RULE, ask_json_schema, clarification_lines, take_question
from runs.statemachine import NewEvent
from runs.textdata import storable_text
from runs.tools.base import ToolSpec

log = logging.getLogger(__name__)
PLANNER = TranscriptEvent.Role.PLANNER


class NextStep(BaseModel):
    """One answer of the iterative planner: the next tool call, or ``stop``."""

    model_config = ConfigDict(extra="forbid")

    thought: str = Field(default="", description="Your reasoning about where the task stands.")
    next_step: str = Field(default="", description="What the next step does, in one sentence.")
    tool: str | None = Field(default=None, description="The tool to call; null when stopping.")
    arguments: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Arguments for the tool, matching its parameters schema. A string may use an "
            "earlier step's output: '{{ steps.<id>.result.<key> }}'."
        ),
    )
    stop: bool = Field(
        default=False,
        description="true when the task is done: with no tool now, or after this last tool call.",
    )
    confidence: float | None = Field(
        default=None, ge=0, le=1, description="Your confidence in this step, 0 to 1."
    )

    @model_validator(mode="after")
    def _tool_or_stop(self) -> NextStep:
        if not self.tool and not self.stop:
            raise ValueError("give a tool to call, or stop: true when the task is done")
        return self


def step_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``NextStep`` (the providers' structured-output format)."""
    return NextStep.model_json_schema(mode="validation")


def task_is_iterative(task: Any) -> bool:
    """A task the executor runs one planner call per step (a model planner in iterative mode)."""
    return task.mode == "iterative" and task.planner not in ("", "manual", "playbook")


# --------------------------------------------------------------------------- the model call
_RULES = """You are the planner of an agent that executes real tools one step at a time.
Each time you are called, choose the single next step from the task and the results so far.
Answer with one JSON object that follows the given schema:
{"thought", "next_step", "tool", "arguments", "stop", "confidence"}.
Rules:
- Use only the tools listed below, with arguments that satisfy the tool's parameters schema.
- A string argument may use an earlier step's output: "{{ steps.<id>.result.<key> }}".
- When the task is done, answer stop: true with tool null. If the step you give is the last one
  needed, you may set stop: true with it: the run then ends once it succeeds.
- Do not repeat a step that already succeeded. Do not take more steps than the task needs."""


def step_system_prompt(context: PlanningContext) -> str:
    """Rules, limits and the tool catalogue for one iterative call."""
    iteration = context.iteration or IterationContext(history=[])
    lines = [
        _RULES,
        "",
        "Limits:",
        f"- at most {iteration.max_steps} steps in all",
        f"- at most {context.max_replans} new attempts after failed steps",
        *(f"- {c}" for c in context.constraints),
        "",
        tool_catalogue(context),
    ]
    return "\n".join(lines)


def step_message(context: PlanningContext) -> str:
    """The user message: the task, the steps so far with results, and what to decide now."""
    iteration = context.iteration or IterationContext(history=[])
    parts = [f"Task: {context.task}"]
    if context.description:
        parts.append(f"Details: {context.description}")
    if context.clarifications:
        parts.append(clarification_lines(context.clarifications))
    if iteration.history:
        parts.append("Steps so far (oldest first):\n" + _json_lines(iteration.history, "result"))
    else:
        parts.append("No step has run yet.")
    if iteration.failure:
        parts.append(
            f"The last step failed: {iteration.failure}. Choose how to go on (another tool, "
            "other arguments), or stop: true if the task cannot be done."
        )
    parts.append(
        f"This is step {iteration.number} of at most {iteration.max_steps}; its id will be "
        f"step-{iteration.number}. Give the next step, or stop: true."
    )
    return "\n\n".join(parts)


def _step_problems(data: Any) -> tuple[NextStep | None, list[str]]:
    try:
        return NextStep.model_validate(data), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(p) for p in error["loc"]) or "(answer)"
            problems.append(f"{where}: {error['msg']}")
        return None, problems


def _plan_problem_text(path: str, message: str, index: int) -> str:
    """A plan validation problem in the step's terms (``steps[2].params.x`` → ``arguments.x``)."""
    prefix = f"steps[{index}]"
    if path.startswith(prefix):
        rest = path[len(prefix) :].lstrip(".")
        rest = rest.replace("params", "arguments", 1).replace("action", "tool", 1)
        path = rest or "step"
    return f"{path or '(step)'}: {message}"


def step_repair_message(problems: list[str], *, syntax: str = "") -> str:
    if syntax:
        return (
            f"Your answer is not valid JSON: {syntax}. "
            "Answer again with only the JSON object that follows the schema."
        )
    listed = "\n".join(f"- {p}" for p in problems)
    return (
        f"Your step has {len(problems)} problem(s):\n{listed}\n"
        "Fix every problem and answer with the whole corrected JSON object."
    )


def step_with_model(
    provider: Provider,
    context: PlanningContext,
    options: PlannerOptions,
    *,
    tools: Mapping[str, ToolSpec],
    purpose: str = "step",
    kept: list[dict[str, Any]] | None = None,
) -> PlanOutcome:
    """Ask one model for the next step, with up to ``options.repair_rounds`` repair rounds.

    The outcome's document is the whole next plan version (kept steps + the new
    one); ``stop`` without a document means the planner says the task is done.
    """
    model = options.model or provider.default_model
    label = f"{provider.name}/{model}"
    iteration = context.iteration or IterationContext(history=[], max_steps=options.max_steps)
    # The first call has no iteration yet: its prompts must state the task's limit too.
    context = replace(context, iteration=iteration)
    purpose = "step" if purpose == "plan" else purpose
    kept = kept or []
    asking, system, schema = _prompt(context)
    messages = [{"role": "user", "content": step_message(context)}]
    outcome = PlanOutcome(ok=False, planner=label, mode="iterative")
    for attempt in range(1, options.repair_rounds + 2):
        reply = ask_model(
            provider,
            outcome,
            label=label,
            model=model,
            system=system,
            messages=messages,
            schema=schema,
            schema_name="next_step",
            options=options,
            purpose=purpose if attempt == 1 else "repair",
            attempt=attempt,
        )
        if reply is None:
            return outcome
        if asking and take_question(outcome, label, reply.data):
            return outcome
        if is_handoff(reply.data):  # a workflow finishes the work: its steps, then stop
            feedback = _take_handoff(outcome, label, reply.data, tools=tools, kept=kept)
            if outcome.ok:
                return outcome
            messages += [
                {"role": "assistant", "content": reply.text or "(empty)"},
                {"role": "user", "content": feedback},
            ]
            continue
        step, problems = (None, []) if reply.data is None else _step_problems(reply.data)
        if reply.data is None:
            syntax = syntax_problem(reply.text)
            outcome.reason = f"{label} answered with something that is not a JSON step: {syntax}"
            feedback = step_repair_message([], syntax=syntax)
        elif step is None:
            outcome.reason = f"{label}'s step is invalid: {problems[0]}"
            feedback = step_repair_message(problems)
        else:
            taken = _take_step(outcome, label, step, context, tools=tools, kept=kept)
            if taken is None:
                return outcome
            outcome.reason = (
                f"{label}'s step is still invalid after {attempt - 1} repair round(s): {taken[0]}"
            )
            feedback = step_repair_message(taken)
        messages += [
            {"role": "assistant", "content": reply.text or "(empty)"},
            {"role": "user", "content": feedback},
        ]
    outcome.step = None  # an answer that never became valid is no step
    return outcome


def _take_step(
    outcome: PlanOutcome,
    label: str,
    step: NextStep,
    context: PlanningContext,
    *,
    tools: Mapping[str, ToolSpec],
    kept: list[dict[str, Any]],
) -> list[str] | None:
    """Take a well-formed step into ``outcome``: None once it is final (a stop, or a step that
    validates as the next plan version), else the problems to send back for repair."""
    iteration = context.iteration
    assert iteration is not None
    outcome.step = step.model_dump(mode="json")
    outcome.confidence = step.confidence
    outcome.stop = step.stop
    if step.stop and not step.tool:
        outcome.ok = True
        outcome.reason = f"the planner said stop: {step.thought or 'the task is done'}"
        return None
    document = _document(context, f"step-{iteration.number}", step, kept)
    validated = check_plan(document, tools=tools, mode="upfront", kept=kept)
    outcome.document = merge_kept(document, kept)
    outcome.validated = validated
    if validated.is_valid:
        outcome.ok = True
        outcome.reason = ""
        return None
    return [_plan_problem_text(p.path, p.message, len(kept)) for p in validated.problems]


def _take_handoff(
    outcome: PlanOutcome,
    label: str,
    data: dict[str, Any],
    *,
    tools: Mapping[str, ToolSpec],
    kept: list[dict[str, Any]],
) -> str:
    """Put a handoff's steps on ``outcome`` (after the kept ones, then stop); else the feedback."""
    handoff = expand_handoff(data)
    if handoff.problems:
        problems = [f"{p.path or 'handoff'}: {p.message}" for p in handoff.problems]
        outcome.reason = (
            f"{label}'s handoff to workflow {handoff.workflow} is not usable: {problems[0]}"
        )
        return step_repair_message(problems)
    document = _after(handoff.document, kept[-1]["id"] if kept else None)
    validated = check_plan(document, tools=tools, mode="upfront", kept=kept)
    outcome.document = merge_kept(document, kept)
    outcome.validated = validated
    outcome.handoff = handoff_record(handoff, validated)
    if validated.is_valid:
        outcome.ok = True
        outcome.stop = True  # the workflow finishes the task: no step after it
        outcome.reason = ""
        outcome.step = {
            "thought": f"hand the rest to workflow {handoff.workflow}",
            "next_step": f"workflow {handoff.workflow}",
            "tool": None,
            "stop": True,
        }
        return ""
    problems = [f"{p.path}: {p.message}" for p in validated.problems]
    outcome.reason = f"workflow {handoff.workflow} made an invalid plan: {problems[0]}"
    return step_repair_message(problems)


def _after(document: Any, last: str | None) -> Any:
    """A workflow's plan starting after ``last`` (its first steps depend on it), in object form."""
    if isinstance(document, list):
        document = {"steps": document}
    if (
        last is None
        or not isinstance(document, dict)
        or not isinstance(document.get("steps"), list)
    ):
        return document
    steps = [
        {**s, "depends_on": [last]} if isinstance(s, dict) and not s.get("depends_on") else s
        for s in document["steps"]
    ]
    return {**document, "steps": steps}


def _prompt(context: PlanningContext) -> tuple[bool, str, dict[str, Any]]:
    """Whether this call may ask, its system prompt and its answer schema.

    A question instead of the first step parks the planning run; instead of a later
    step it parks the executing run (``runs.lifecycle.iterative``), both until answered.
    """
    asking = context.may_ask
    system = step_system_prompt(context) + (f"\n{ASK_RULE}" if asking else "")
    workflows = workflow_lines(context.workflows)
    if workflows:
        system += f"\n\n{workflows}"
    schema = ask_json_schema(step_json_schema()) if asking else step_json_schema()
    return asking, system, handoff_json_schema(schema, context.workflows)


def _document(
    context: PlanningContext, key: str, step: NextStep, kept: list[dict[str, Any]]
) -> dict[str, Any]:
    """The new step as a plan document; it depends on the latest kept step (a sequence)."""
    new: dict[str, Any] = {
        "id": key,
        "action": step.tool,
        "params": step.arguments or {},
        "description": step.next_step,
    }
    if kept:
        new["depends_on"] = [kept[-1]["id"]]
    if step.confidence is not None:
        new["confidence"] = step.confidence
    return {"goal": context.task[:500], "steps": [new], "rollback": []}


# --------------------------------------------------------------------------- the executor's hooks


def step_event(outcome: PlanOutcome, *, number: int, plan: Plan | None = None) -> NewEvent:
    """The ``planner.step`` event of an iterative answer (its thought, tool, stop, confidence)."""
    step = outcome.step or {}
    return NewEvent(
        PLANNER,
        PlannerStep(
            number=number,
            plan_id=plan.pk if plan is not None else None,
            version=plan.version if plan is not None else None,
            step=f"step-{number}" if step.get("tool") else None,
            thought=storable_text(str(step.get("thought") or "")[:2000]),
            next_step=storable_text(str(step.get("next_step") or "")[:500]),
            tool=storable_text(str(step["tool"])) if step.get("tool") else None,
            stop=bool(step.get("stop")),
            confidence=_storable_confidence(step.get("confidence")),
        ),
    )


def _storable_confidence(value: Any) -> float | None:
    """A confidence the event can hold (a number from 0 to 1), else none."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None
