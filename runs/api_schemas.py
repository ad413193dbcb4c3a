"""In/Out schemas of the runs API: tasks, runs, plans, steps, events, tools and tokens.

Inputs (``*In``) say what a client may send; outputs (``*Out``) list every field
explicitly, so a new model field never leaks into the API by accident.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from ninja import Field, ModelSchema, Schema
from pydantic import ConfigDict, field_validator, model_validator
from pydantic_core import PydanticCustomError

from runs.evaluation.checks import CHECK_TYPES
from runs.events import event_summary
from runs.execution.budgets import BUDGET_FIELDS, budget_overrides
from runs.models import ApiToken, Plan, Run, RunStatus, Step, Tool, TranscriptEvent

MAX_PAGE = 200
MAX_EVENTS_PAGE = 1000
MAX_ID = 2**63 - 1  # the largest key SQLite and PostgreSQL bigint hold


def storable_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored (NUL, lone surrogates, NaN/Infinity), or None."""
    found = _unstorable(value)
    return f"{found[0] or 'value'}: {found[1]}" if found else None


def _unstorable(value: Any) -> tuple[str, str] | None:
    """(path, reason) of the first value a database cannot store, or None."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path, "text may not contain NUL characters"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return path, "text may not contain lone surrogates"
        elif isinstance(item, float) and not math.isfinite(item):
            return path, f"{item} is not a finite number"
        elif isinstance(item, dict):
            for key, sub in item.items():
                stack.append((key, path))
                stack.append((sub, f"{path}.{key}" if path else str(key)))
        elif isinstance(item, list | tuple):
            stack.extend((sub, f"{path}[{i}]") for i, sub in enumerate(item))
    return None


class In(Schema):
    """Base of every input: unknown keys and values a database cannot store are refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        found = _unstorable(data)
        if found:
            raise PydanticCustomError(
                "unstorable", "{reason}", {"path": found[0], "reason": found[1]}
            )
        return data


# --------------------------------------------------------------------------- tasks
class TaskIn(In):
    """A task: with a hand-written ``plan``, or without one and with planner options to be planned."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "Look at the schema",
                    "plan": {
                        "goal": "Read the schema",
                        "steps": [
                            {"id": "read", "action": "read_schema", "params": {"db": "prod.db"}}
                        ],
                    },
                },
                {
                    "title": "Back up the database, then migrate it",
                    "planner": "openai",
                    "mode": "iterative",
                    "max_steps": 6,
                },
            ]
        }
    )

    title: str = Field(
        "", max_length=200, description="Defaults to the plan's goal when left empty."
    )
    description: str = Field("", max_length=10_000)
    max_parallel: int | None = Field(
        None, ge=1, le=256, description="How many independent steps may run at the same time."
    )
    plan: str | dict[str, Any] | list[Any] | None = Field(
        None,
        description=(
            "The plan: YAML or JSON text, or the JSON document itself "
            "({goal, steps: [{id, action, params, depends_on}], rollback}). "
            "Leave it out and give planner options to have a planner make it."
        ),
    )
    # Planner options (a task without a plan); each one left out takes the deployment's setting.
    planner: str | None = Field(
        None,
        max_length=30,
        description="openai, anthropic, compatible, chain or playbook.",
        json_schema_extra={"enum": ["openai", "anthropic", "compatible", "chain", "playbook"]},
    )
    model: str | None = Field(None, max_length=100, description="Empty: the provider's default.")
    mode: str | None = Field(
        None,
        max_length=10,
        description="auto (upfront or direct), upfront, iterative (one model call per step), direct.",
        json_schema_extra={"enum": ["auto", "upfront", "iterative", "direct"]},
    )
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=200_000)
    max_replans: int | None = Field(None, ge=0, le=20)
    max_steps: int | None = Field(None, ge=1, le=100, description="Iterative mode: the most steps.")
    # Supervisor budgets for this task; each left out takes the deployment's default.
    budget_max_steps: int | None = Field(None, ge=1, le=1_000_000)
    budget_max_tokens: int | None = Field(None, ge=1, le=2_000_000_000)
    budget_max_cost: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=6)
    budget_max_wall_seconds: int | None = Field(None, ge=1, le=2_000_000_000)

    def budgets(self) -> dict[str, Any]:
        """The budget overrides given."""
        return budget_overrides(self.model_dump(include=set(BUDGET_FIELDS)))

    def planner_options(self) -> dict[str, Any]:
        """The planner options given (those left out are absent)."""
        names = (
            "planner",
            "model",
            "mode",
            "temperature",
            "max_tokens",
            "max_replans",
            "max_steps",
        )
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


# --------------------------------------------------------------------------- runs
class RunFilters(In):
    """Query filters of the run list; each one given narrows the list."""

    status: list[RunStatus] | None = Field(
        None, description="One or more statuses (repeat the parameter)."
    )
    submitter: str | None = Field(None, max_length=150, description="Username of the submitter.")
    created_after: datetime | None = Field(None, description="Created at or after (ISO 8601).")
    created_before: datetime | None = Field(None, description="Created before (ISO 8601).")
    q: str | None = Field(None, max_length=200, description="Text in the task title.")

    @field_validator("created_after", "created_before", mode="before")
    @classmethod
    def _not_a_number(cls, value: Any) -> Any:
        """ISO 8601 only, as documented: pydantic would read ``1020790`` as a Unix time."""
        text = str(value).strip() if isinstance(value, str | int | float) else ""
        if text and text.lstrip("+-").replace(".", "", 1).isdigit():
            raise ValueError("give an ISO 8601 date or date-time, not a number")
        return value

    @field_validator("created_after", "created_before")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """In UTC (naive means UTC): databases refuse offsets such as -21:42."""
        if value is None:
            return None
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            raise ValueError("date out of range") from None


class RunSummaryOut(Schema):
    id: int
    status: RunStatus
    task_id: int
    title: str
    submitted_by: str | None
    plan_version: int | None = Field(description="Version of the plan the run executes.")
    steps_total: int = Field(description="Main steps of the current plan.")
    steps_succeeded: int
    stop_reason: str
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @staticmethod
    def resolve_title(run: Run) -> str:
        return run.task.title

    @staticmethod
    def resolve_submitted_by(run: Run) -> str | None:
        user = run.task.submitted_by
        return user.get_username() if user is not None else None

    @staticmethod
    def resolve_plan_version(run: Run) -> int | None:
        return run.current_plan.version if run.current_plan is not None else None

    @staticmethod
    def resolve_cancel_requested(run: Run) -> bool:
        return run.cancel_requested_at is not None


class RunOut(RunSummaryOut):
    description: str
    max_parallel: int
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None

    @staticmethod
    def resolve_description(run: Run) -> str:
        return run.task.description

    @staticmethod
    def resolve_cancel_requested_by(run: Run) -> str | None:
        user = run.cancel_requested_by
        return user.get_username() if user is not None else None


class RunPageOut(Schema):
    items: list[RunSummaryOut]
    total: int = Field(description="Runs matching the filters, across every page.")
    limit: int
    offset: int


class PlanProblemOut(Schema):
    path: str
    code: str
    message: str


class PlanOut(ModelSchema):
    created_by: str | None
    errors: list[PlanProblemOut]
    document: Any = Field(description="The plan as submitted (after YAML/JSON parsing).")
    rollback: list[Any]

    class Meta:
        model = Plan
        fields = ["id", "version", "parent", "source", "goal", "is_valid", "created_at"]

    @staticmethod
    def resolve_created_by(plan: Plan) -> str | None:
        return plan.created_by.get_username() if plan.created_by is not None else None


class StepOut(ModelSchema):
    depends_on: list[str]
    params: dict[str, Any]
    result: Any

    class Meta:
        model = Step
        fields = [
            "id",
            "key",
            "phase",
            "position",
            "tool_name",
            "description",
            "confidence",
            "status",
            "attempts",
            "error",
            "started_at",
            "finished_at",
        ]


class EventOut(ModelSchema):
    summary: str = Field(description="What happened, in one line (the run page's and websocket's).")
    payload: dict[str, Any]

    @staticmethod
    def resolve_summary(obj: TranscriptEvent) -> str:
        return event_summary(obj.kind, obj.payload)

    class Meta:
        model = TranscriptEvent
        fields = ["seq", "role", "kind", "created_at"]


class EventPageOut(Schema):
    run_status: RunStatus = Field(description="Stop following once this is a final status.")
    items: list[EventOut]
    next_after: int = Field(description="Pass as ?after= to get the events that follow.")
    has_more: bool = Field(description="More events exist already; ask again at once.")


# --------------------------------------------------------------------------- tools
_CHECKS = "Evaluator checks of each result (see runs/evaluation/checks.py)."
_CHECK = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": list(CHECK_TYPES)},
        "on_fail": {"enum": ["fail", "warn"]},
        "path": {"type": "string"},
    },
}


class ToolIn(In):
    """A whole tool; ``config`` depends on ``kind`` (see runs/tools/kinds/<kind>.py)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "hello",
                    "kind": "python",
                    "config": {"callable": "runs.tools.builtin.echo"},
                    "parameters_schema": {
                        "type": "object",
                        "properties": {"who": {"type": "string"}},
                    },
                }
            ]
        }
    )

    name: str = Field(max_length=100, pattern=r"^[-a-zA-Z0-9_]+$")
    description: str = Field("", max_length=10_000)
    kind: str = Field(json_schema_extra={"enum": list(Tool.Kind.values)})
    config: dict[str, Any] = Field(default_factory=dict)
    parameters_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description='A JSON Schema with "type": "object".',
    )
    timeout_seconds: float = Field(60.0, gt=0, le=86_400)
    max_retries: int = Field(2, ge=0, le=100)
    sensitive: bool = False
    idempotent: bool = False
    enabled: bool = True
    checks: list[dict[str, Any]] = Field(
        default_factory=list, description=_CHECKS, json_schema_extra={"items": _CHECK}
    )


class ToolPatchIn(In):
    """Some fields of a tool; those left out keep their value."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"enabled": False}]})

    name: str | None = Field(None, max_length=100, pattern=r"^[-a-zA-Z0-9_]+$")
    description: str | None = Field(None, max_length=10_000)
    kind: str | None = Field(None, json_schema_extra={"enum": list(Tool.Kind.values)})
    config: dict[str, Any] | None = None
    parameters_schema: dict[str, Any] | None = None
    timeout_seconds: float | None = Field(None, gt=0, le=86_400)
    max_retries: int | None = Field(None, ge=0, le=100)
    sensitive: bool | None = None
    idempotent: bool | None = None
    enabled: bool | None = None
    checks: list[dict[str, Any]] | None = Field(
        None, description=_CHECKS, json_schema_extra={"items": _CHECK}
    )


class ToolOut(Schema):
    name: str
    description: str
    kind: str
    parameters_schema: dict[str, Any]
    timeout_seconds: float
    max_retries: int
    sensitive: bool
    idempotent: bool
    enabled: bool
    checks: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    config: dict[str, Any] | None = Field(
        None, description="Only shown to staff: it may hold URLs and headers."
    )


class ToolsImportIn(In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": "tools:\n  - name: hello\n    script:\n      python: runs.tools.builtin.echo\n"
                }
            ]
        }
    )
    text: str = Field(max_length=2_000_000, description="A tools.yaml file's content.")
    replace: bool = Field(False, description="Also disable every enabled tool the file omits.")


class ToolsImportOut(Schema):
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    disabled: list[str]


# --------------------------------------------------------------------------- tokens
class TokenIn(In):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "CI pipeline"}]})
    name: str = Field(min_length=1, max_length=100, description="What will use the token.")


class TokenOut(ModelSchema):
    active: bool

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]

    @staticmethod
    def resolve_active(token: ApiToken) -> bool:
        return token.revoked_at is None


class NewTokenOut(TokenOut):
    token: str = Field(description="The secret: shown this once, never again.")


class RetryIn(In):
    """Which failed step a retry starts from."""

    step: str = Field(..., min_length=1, max_length=100, description="A failed step's id.")


class DecisionIn(In):
    """What a reviewer's decision carries besides its kind: the checklist, a reason, an edit."""

    checklist: list[int] = Field(
        default_factory=list,
        max_length=1000,
        description="Indexes of the checklist sentences ticked (every one, but to reject or abort).",
    )
    reason: str = Field("", max_length=10_000, description="Why; required to reject or abort.")
    plan: dict[str, Any] | str | None = Field(
        None, description="The edited plan (object, or YAML/JSON text); only with `edit`."
    )


class ResumeIn(DecisionIn):
    """A reviewer's action on an escalated run (what its open escalation item decides)."""

    action: Literal["retry", "skip", "edit", "rollback", "abort"] = Field(
        description=(
            "retry the stuck step (attempts kept), skip it (and what needs it), edit the plan "
            "and resume (finished steps carried over), roll back, or abort (needs a reason)."
        )
    )
