"""What the planner model sees: the task, its limits, the tools, and (when replanning) the story so far.

The prompt is plain text plus the JSON Schema of the answer; the schema travels
separately as the provider's structured-output format, so the text only has to
explain the rules a schema cannot say (references, rollback, confidence).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from runs.models import Tool
from runs.planning.handoff import WorkflowInfo, load_workflows, workflow_lines
from runs.planning.questions import ASK_RULE, clarification_lines
from runs.planning.subplans import SUBPLAN_GUIDANCE
from runs.planning.validation import PlanProblem

_RESULT_CHARS = 1500  # a step result longer than this is cut in the replanning context
_PLAN_CHARS = 20_000  # the failed plan as written, cut beyond this in the replanning context


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str
    parameters: dict[str, Any]
    sensitive: bool = False
    idempotent: bool = False
    kind: str = ""
    # An llm tool's output_schema: the shape of its result, for references to it.
    answer_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReplanContext:
    """A failed run's state: what finished (kept), what failed, what never ran."""

    finished: list[dict[str, Any]]  # {"id", "action", "params", "result"}
    failed: list[dict[str, Any]]  # {"id", "action", "params", "error"}
    remaining: list[dict[str, Any]]  # {"id", "action", "params"}
    replan_number: int = 1
    # The version that failed, as written (goal, steps with depends_on, rollback): its shape
    # for a model, its declared fallbacks for the offline planner.
    plan: Any = None


@dataclass(frozen=True)
class IterationContext:
    """Iterative mode: the steps taken so far (oldest first) and the number of the next one."""

    history: list[dict[str, Any]]  # {"id", "tool", "arguments", "status", "result" | "error"}
    number: int = 1
    max_steps: int = 20
    failure: str = ""  # set when the last step failed: the model chooses how to go on


@dataclass(frozen=True)
class PlanningContext:
    task: str
    description: str = ""
    tools: list[ToolInfo] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    max_steps: int = 50
    max_parallel: int = 8
    max_replans: int = 3
    mode: str = "auto"
    replan: ReplanContext | None = None
    iteration: IterationContext | None = None
    # Clarifying questions (runs/planning/questions.py): the answers so far, and whether
    # the planner may still ask one.
    clarifications: list[tuple[str, str]] = field(default_factory=list)
    may_ask: bool = False
    # Registered workflows the planner may hand the work to (runs.planning.handoff).
    workflows: list[WorkflowInfo] = field(default_factory=list)


def load_tools() -> list[ToolInfo]:
    """The enabled tools of the registry, as the planner sees them."""

    return [
        ToolInfo(
            name=t.name,
            description=t.description,
            parameters=t.parameters_schema or {"type": "object"},
            sensitive=t.sensitive,
            idempotent=t.idempotent,
            kind=t.kind,
            answer_schema=(t.config or {}).get("output_schema")
            if t.kind == Tool.Kind.LLM
            else None,
        )
        for t in Tool.objects.filter(enabled=True).order_by("name")
    ]


def context_for(
    *,
    task: str,
    description: str = "",
    mode: str = "auto",
    max_parallel: int | None = None,
    max_replans: int = 3,
    replan: ReplanContext | None = None,
    iteration: IterationContext | None = None,
    clarifications: list[tuple[str, str]] | None = None,
    may_ask: bool = False,
) -> PlanningContext:
    return PlanningContext(
        task=task,
        description=description,
        tools=load_tools(),
        max_steps=min(settings.PLANNERWEB_MAX_PLAN_STEPS, 100),
        max_parallel=max_parallel or settings.PLANNERWEB_DEFAULT_MAX_PARALLEL,
        max_replans=max_replans,
        mode=mode,
        replan=replan,
        iteration=iteration,
        clarifications=list(clarifications or []),
        may_ask=may_ask,
        workflows=load_workflows(),
    )


_RULES = """You are the planner of an agent that executes plans with real tools.
Answer with one JSON object that follows the given schema: {"goal", "steps", "rollback"}.
Rules:
- Use only the tools listed below, with params that satisfy each tool's parameters schema.
- Steps form a DAG through depends_on; independent steps run in parallel.
- A string param may use an earlier step's output: "{{ steps.<id>.result.<key> }}"; the step
  must then depend on that step.
- A step that changes something may carry its own "undo" ({action, params}); its params may use
  that step's own result. rollback lists further undo actions (no references), run in order
  after the undos; give one "undoes": "<step id>" to run it only if that step succeeded.
- Give each step a confidence between 0 and 1.
- Do not over-plan: if one tool call does the task, return exactly one step."""


def system_prompt(context: PlanningContext) -> str:
    """The fixed part: rules, limits and the tool catalogue."""
    lines = [_RULES, "", "Limits:"]
    lines.append(
        f"- at most {context.max_steps} steps; {context.max_parallel} run at the same time"
    )
    lines.append(f"- at most {context.max_replans} replans if a step fails")
    lines.extend(f"- {c}" for c in context.constraints)
    if context.mode == "direct":
        lines.append("- this task is one tool call: return exactly one step and no rollback")
    if context.may_ask:
        lines.append(ASK_RULE)
    workflows = workflow_lines(context.workflows)
    return "\n".join([*lines, "", tool_catalogue(context), *(["", workflows] if workflows else [])])


_LLM_GUIDANCE = """Tools marked [llm] are a focused prompt to a language model, not an action:
use one for a step that needs thought (write a script or a message, summarise, assess, decide)
and an action tool for anything that reads or changes systems. Pass an llm step what it must
think about through its params, often an earlier result ("{{ steps.<id>.result }}"); its result
is its answer (text, or JSON of the answer schema shown), which later steps may use."""
_AGENT_GUIDANCE = """Tools marked [agent] run a model that calls tools itself, in a bounded loop:
params {"instruction": "<what to do, in words>", "tools": ["<tool>", ...]}. Use one only for a
step you cannot spell out as tool calls in advance (explore, then act on what it finds), with the
fewest tools it needs; sensitive tools are refused inside an agent, so give them steps of their
own. Prefer plain steps: each agent iteration is a model call."""


def tool_catalogue(context: PlanningContext) -> str:
    """The enabled tools with their flags and parameter schemas (and llm tools' answers)."""
    lines = ["Tools:"]
    for tool in context.tools:
        thinks = tool.kind == Tool.Kind.LLM
        flags = [
            f
            for f, on in (
                ("llm", thinks),
                ("agent", tool.kind == Tool.Kind.AGENT),
                ("sensitive", tool.sensitive),
                ("idempotent", tool.idempotent),
            )
            if on
        ]
        lines.append(
            f"- {tool.name}{' [' + ', '.join(flags) + ']' if flags else ''}: {tool.description}"
        )
        lines.append(f"  parameters: {json.dumps(tool.parameters, sort_keys=True)}")
        if thinks:
            answer = tool.answer_schema or {"type": "string"}
            lines.append(f"  answer: {json.dumps(answer, sort_keys=True)}")
    if not context.tools:
        lines.append("- (none: no tool is enabled, so no plan can work; say so in the goal)")
    kinds = {tool.kind for tool in context.tools}
    if Tool.Kind.LLM in kinds:
        lines += ["", _LLM_GUIDANCE]
    if Tool.Kind.AGENT in kinds:
        lines += ["", _AGENT_GUIDANCE]
    lines += ["", SUBPLAN_GUIDANCE]
    return "\n".join(lines)


def task_message(context: PlanningContext) -> str:
    """The first user message: the task, and when replanning, what happened so far."""
    parts = [f"Task: {context.task}"]
    if context.description:
        parts.append(f"Details: {context.description}")
    if context.clarifications:
        parts.append(clarification_lines(context.clarifications))
    replan = context.replan
    if replan is not None:
        parts.append(
            f"This is replan {replan.replan_number} of at most {context.max_replans}. "
            "A step failed after its retries. Finished steps are kept as they are: do not "
            "repeat them; your steps may depend on them and use their results. Plan only the "
            "remaining work, with new ids, and a rollback for the whole run."
        )
        parts.append("Finished steps (kept):\n" + _json_lines(replan.finished, "result"))
        parts.append("Failed step:\n" + _json_lines(replan.failed, "error"))
        parts.append("Steps that did not run:\n" + _json_lines(replan.remaining, None))
        if replan.plan is not None:
            text = json.dumps(replan.plan, ensure_ascii=False, default=str)
            if len(text) > _PLAN_CHARS:
                text = text[:_PLAN_CHARS] + "…"
            parts.append("The plan that failed, as written:\n" + text)
    return "\n\n".join(parts)


def repair_message(problems: list[PlanProblem], *, syntax: str = "") -> str:
    """The feedback of a repair round: every problem, with where it is."""
    if syntax:
        return (
            f"Your answer is not a valid JSON plan: {syntax}. "
            "Answer again with only the JSON object that follows the schema."
        )
    listed = "\n".join(f"- {p.path or '(plan)'}: {p.message}" for p in problems)
    return (
        f"Your plan has {len(problems)} problem(s):\n{listed}\n"
        "Fix every problem and answer with the whole corrected plan."
    )


def _json_lines(items: list[dict[str, Any]], cut_key: str | None) -> str:
    if not items:
        return "(none)"
    lines = []
    for item in items:
        shown = dict(item)
        if cut_key and cut_key in shown:
            text = json.dumps(shown[cut_key], ensure_ascii=False, default=str)
            shown[cut_key] = text if len(text) <= _RESULT_CHARS else text[:_RESULT_CHARS] + "…"
        lines.append("- " + json.dumps(shown, ensure_ascii=False, default=str))
    return "\n".join(lines)
