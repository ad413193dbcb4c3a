"""The plan document: what a planner or an operator submits, and its normalized form.

Two input shapes are accepted and normalized into ``PlanDocument``:

- the object form ``{"goal", "steps": [...], "rollback": [...]}``;
- a plain ordered list of steps, where each step depends on the one before it
  unless it says otherwise, and missing ids become ``step-1``, ``step-2``, ...

Leniency is limited to spellings that LLMs and people commonly vary (int ids,
``tool`` for ``action``, ``args``/``arguments`` for ``params``); unknown keys are
errors so that typos such as ``dependson`` surface instead of being dropped.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from runs.models import Task
from runs.textdata import MAX_CHARS, TextDataError, parse_json_or_yaml, unstorable

# Ids appear in references (``steps.<id>.result``) and as ``Step.key`` (100 chars),
# so dots, spaces and braces are kept out of them.
STEP_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$"
STEP_ID_RE = re.compile(STEP_ID_PATTERN)
# A step's own undo is stored as a rollback step keyed ``undo-<step id>`` (``Step.key``: 100).
UNDO_KEY_MAX = 100


def undo_key(step_id: str) -> str:
    """The key of the rollback step that is ``step_id``'s own undo."""
    return f"undo-{step_id}"


def _listify(value: Any) -> Any:
    """``depends_on: a`` and ``depends_on: null`` are common shorthands for ``[a]`` and ``[]``."""
    if type(value) is list:  # the usual case, first: this runs for every step
        return value
    if value is None:
        return []
    if isinstance(value, str | int) and not isinstance(value, bool):
        return [value]
    return value


def _empty_list_if_none(value: Any) -> Any:
    return [] if value is None else value


def _empty_dict_if_none(value: Any) -> Any:
    return {} if value is None else value


def _empty_str_if_none(value: Any) -> Any:
    return "" if value is None else value


StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN)]
# A dependency is checked against the plan's ids instead (validation names a malformed
# one): matching the pattern again for every edge would be a fifth of the shape check
# of a 1000-step plan whose steps have 8 dependencies each. The schema still shows it.
DependencyId = Annotated[str, WithJsonSchema({"type": "string", "pattern": STEP_ID_PATTERN})]
Params = Annotated[dict[str, Any], BeforeValidator(_empty_dict_if_none)]
Description = Annotated[str, BeforeValidator(_empty_str_if_none)]
Locks = Annotated[list[str], BeforeValidator(_listify)]
_LOCKS = (
    "Resource locks the step takes before it starts, e.g. 'env:{{ params.environment }}': "
    "it waits while another step holds the same key (besides the locks its tool declares)."
)


def _params_field(description: str) -> Any:
    return Field(
        default_factory=dict,
        validation_alias=AliasChoices("params", "arguments", "args"),
        description=description,
    )


class _ToolCall(BaseModel):
    """A tool call written into a plan besides its steps: which tool, with which params."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, frozen=True)

    action: str = Field(
        validation_alias=AliasChoices("action", "tool"), description="Name of the tool to call."
    )


class FallbackStep(_ToolCall):
    """A hand-written alternative to a step: what the offline planner runs in its place if it fails."""

    params: Params = _params_field(
        "Arguments for the tool; may reference the step's own dependencies."
    )
    description: Description = Field(default="", description="Why this is the fallback.")


class UndoAction(_ToolCall):
    """A step's own undo: run when the plan fails after this step succeeded."""

    params: Params = _params_field(
        "Arguments for the tool. A string value may reference this step's own output: "
        "'{{ steps.<this step's id>.result.<key> }}'."
    )
    description: Description = Field(default="", description="What this undoes.")


class PlanStep(BaseModel):
    """One unit of work: call the action (a tool) with params once every depends_on step succeeded."""

    # coerce_numbers_to_str turns ``id: 1`` into "1" in pydantic-core, with no Python call per step.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, frozen=True)

    id: StepId = Field(
        description="Unique step id: letters, digits, '_' and '-'; used in depends_on and references."
    )
    action: str = Field(
        validation_alias=AliasChoices("action", "tool"),
        description="Name of the tool to call.",
    )
    params: Params = _params_field(
        "Arguments for the tool, matching its parameters schema. A string value may "
        "reference an earlier step's output: '{{ steps.<id>.result.<key> }}'."
    )
    depends_on: Annotated[list[DependencyId], BeforeValidator(_listify)] = Field(
        default_factory=list,
        description="Ids of the steps that must succeed before this one starts.",
    )
    description: Description = Field(default="", description="Why this step is needed.")
    confidence: float | None = Field(
        default=None, ge=0, le=1, description="The planner's confidence in this step, 0 to 1."
    )
    # Written by people, for the offline planner's replan; kept out of the schema models see.
    fallback: SkipJsonSchema[FallbackStep | None] = Field(
        default=None,
        description="If this step fails, the replan (playbook planner) runs this call instead.",
    )
    undo: UndoAction | None = Field(
        default=None,
        description="How to undo this step if the plan fails after it succeeded (optional).",
    )
    locks: Locks = Field(default_factory=list, description=_LOCKS)


class RollbackStep(_ToolCall):
    """A plan-level undo action, run in order when the plan fails; it cannot use step outputs."""

    params: Params = _params_field("Arguments for the tool, matching its parameters schema.")
    description: Description = Field(default="", description="What this undoes.")
    undoes: StepId | None = Field(
        default=None,
        description=(
            "The id of the main step this undoes: it then runs only when that step succeeded."
        ),
    )
    locks: Locks = Field(default_factory=list, description=_LOCKS)


class PlanDocument(BaseModel):
    """A plan: a goal, steps forming a DAG through depends_on, and rollback actions."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, frozen=True)

    goal: Description = Field(default="", description="What the plan achieves, in one sentence.")
    steps: list[PlanStep] = Field(description="The steps; they form a DAG through depends_on.")
    rollback: Annotated[list[RollbackStep], BeforeValidator(_empty_list_if_none)] = Field(
        default_factory=list,
        description="Undo actions, run in order if the plan fails (after the steps' own undos).",
    )

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        return normalize_plan(data)


def normalize_plan(raw: Any) -> Any:
    """Rewrite the list form into the object form and fill in missing step ids.

    Returns ``raw`` itself when nothing needs filling, so the common object form
    costs one pass of key lookups. Anything that is not a usable shape is
    returned unchanged for pydantic to report.
    """
    if isinstance(raw, list):
        return {"steps": _normalize_list_steps(raw)}
    if isinstance(raw, dict):
        steps = raw.get("steps")
        if isinstance(steps, list) and any(
            isinstance(item, dict) and "id" not in item for item in steps
        ):
            filled = [
                {"id": f"step-{i + 1}", **item}
                if isinstance(item, dict) and "id" not in item
                else item
                for i, item in enumerate(steps)
            ]
            return {**raw, "steps": filled}
    return raw


def _normalize_list_steps(items: list[Any]) -> list[Any]:
    """List form: position gives the id when missing and the single dependency when unstated."""
    out: list[Any] = []
    previous: Any = None  # the id of the previous item, None when it had no usable id
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            out.append(item)
            previous = None
            continue
        step = dict(item)
        step.setdefault("id", f"step-{i + 1}")
        if "depends_on" not in step:
            step["depends_on"] = [] if previous is None else [previous]
        out.append(step)
        previous = step["id"]
    return out


def goal_title(document: Any) -> str:
    """A task title from a parsed plan's goal, as long as a title may be ("" without a goal)."""

    goal = document.get("goal") if isinstance(document, dict) else None
    if not isinstance(goal, str):
        return ""
    return goal.strip()[: Task._meta.get_field("title").max_length]


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of the object form, for LLM structured output and editor hints."""
    return PlanDocument.model_json_schema(mode="validation")


class PlanSyntaxError(TextDataError):
    """The plan text is not valid YAML/JSON, is beyond the limits, or holds values JSON cannot store."""


_FENCE_RE = re.compile(r"\A\s*```[A-Za-z0-9_-]*[ \t]*\n(?P<body>.*?)\n[ \t]*```\s*\Z", re.DOTALL)


def parse_plan_text(text: str) -> Any:
    """Parse a plan written as YAML or JSON into plain JSON data.

    1. A Markdown code fence around the whole text (a habit of LLMs) is removed.
    2. ``runs.textdata.parse_json_or_yaml`` parses it within its limits (size,
       depth, integer digits, alias expansion).
    3. The result must be storable: text keys, no NUL or lone surrogates, finite
       numbers, integers within 64 bits, no dates or bytes.
    """
    if len(text) > MAX_CHARS:
        raise PlanSyntaxError(f"the plan is longer than {MAX_CHARS:,} characters")
    fenced = _FENCE_RE.match(text)
    if fenced:
        text = fenced["body"]
    if not text.strip():
        raise PlanSyntaxError("the plan is empty")
    try:
        data = parse_json_or_yaml(text)
    except TextDataError as exc:
        raise PlanSyntaxError(exc.message, line=exc.line, column=exc.column) from None
    found = unstorable(data)
    if found:
        raise PlanSyntaxError(f"{found[0] or 'the plan'}: {found[1]}")
    return data
