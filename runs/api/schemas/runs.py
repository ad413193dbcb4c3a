"""In/Out schemas of the runs resource: filters, runs, plans, steps, events, retries and resumes.

Inputs (``*In``) say what a client may send; outputs (``*Out``) list every field
explicitly, so a new model field never leaks into the API by accident.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from ninja import Field, ModelSchema, Schema
from pydantic import field_validator

from runs.api.inputs import BudgetsIn, DecisionIn, In, QueryIn
from runs.api.paging import PageOut
from runs.events import event_summary
from runs.models import Plan, Run, RunStatus, Step, TranscriptEvent
from runs.planning.accounting import LlmTotals, run_llm_totals
from runs.pools import pool_wait_text
from runs.redaction import redaction_counts
from runs.selectors import attach_step_outcomes, lock_wait_text, run_children, run_confidence

MAX_EVENTS_PAGE = 1000


# --------------------------------------------------------------------------- tasks


# --------------------------------------------------------------------------- runs
class RunFilters(QueryIn):
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
    steps_finished: int = Field(
        description="Main steps in a final status (succeeded, failed, skipped, cancelled,"
        " rolled back): the count the pages show as finished/total."
    )
    step_outcomes: dict[str, int] = Field(
        description="Main steps of the current plan by status, zeros left out: the segments"
        " of the pages' progress bars."
    )
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
    def resolve_step_outcomes(run: Run) -> dict[str, int]:
        if not hasattr(run, "step_outcomes"):
            attach_step_outcomes([run])  # one query; lists attach a page's in one
        return run.step_outcomes  # type: ignore[attr-defined]

    @staticmethod
    def resolve_plan_version(run: Run) -> int | None:
        return run.current_plan.version if run.current_plan is not None else None

    @staticmethod
    def resolve_cancel_requested(run: Run) -> bool:
        return run.cancel_requested_at is not None


class ChildRunOut(Schema):
    """A child run: one subplan step of this run, planned and executed on its own."""

    id: int
    status: str
    title: str
    step: str | None = Field(description="The key of the subplan step it executes.")


class RunOut(RunSummaryOut):
    description: str
    parent_run: int | None = Field(
        description="The run whose subplan step this run executes (null: a top-level run)."
    )
    parent_step: str | None = Field(description="The key of that subplan step.")
    children: list[ChildRunOut] = Field(
        description="Child runs of this run's subplan steps, oldest first."
    )
    max_parallel: int
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None
    cancel_rollback: bool = Field(description="The cancel asked for a rollback.")
    cancel_reason: str = Field(description="Why the operator cancelled.")
    redactions: dict[str, int] = Field(
        description="Distinct values redacted before storage, by kind (email, phone, aws_key, ...)."
    )
    planner: str = Field(description="Who planned: a provider, chain, playbook ('' hand-written).")
    model: str = Field(description="The planner's model ('' for its default or none).")
    mode: str = Field(
        description="Planning mode: auto, upfront, iterative or direct ('' hand-written)."
    )
    model_calls: int = Field(description="Model calls the run made (planning, repairs, replans).")
    tokens_in: int
    tokens_out: int
    cost: float | None = Field(description="US dollars of the priced calls; null: none priced.")
    unpriced_calls: int = Field(description="Calls whose model has no price (not in `cost`).")
    cost_prices: list[str] = Field(
        description="Which prices `cost` used: the settings override or a genai-prices entry."
    )
    confidence: float | None = Field(
        description="The current plan's confidence: its least sure main step (null: none says)."
    )
    trace_id: str | None = Field(
        description="The OpenTelemetry trace id of the run (null while tracing is off)."
    )

    @staticmethod
    def resolve_redactions(run: Run) -> dict[str, int]:
        return redaction_counts(run.redaction)

    @staticmethod
    def resolve_planner(run: Run) -> str:
        return run.task.planner

    @staticmethod
    def resolve_model(run: Run) -> str:
        return run.task.model

    @staticmethod
    def resolve_mode(run: Run) -> str:
        return run.task.mode if run.task.planner else ""

    @staticmethod
    def resolve_model_calls(run: Run) -> int:
        return _totals(run).calls

    @staticmethod
    def resolve_tokens_in(run: Run) -> int:
        return _totals(run).tokens_in

    @staticmethod
    def resolve_tokens_out(run: Run) -> int:
        return _totals(run).tokens_out

    @staticmethod
    def resolve_cost(run: Run) -> float | None:
        cost = _totals(run).cost
        return float(cost) if cost is not None else None

    @staticmethod
    def resolve_unpriced_calls(run: Run) -> int:
        return _totals(run).unpriced

    @staticmethod
    def resolve_cost_prices(run: Run) -> list[str]:
        return list(_totals(run).prices)

    @staticmethod
    def resolve_confidence(run: Run) -> float | None:
        return run_confidence(run)

    @staticmethod
    def resolve_trace_id(run: Run) -> str | None:
        return run.trace_id or None

    @staticmethod
    def resolve_description(run: Run) -> str:
        return run.task.description

    @staticmethod
    def resolve_parent_run(run: Run) -> int | None:
        return run.parent_run_id

    @staticmethod
    def resolve_parent_step(run: Run) -> str | None:
        return run.parent_step.key if run.parent_step is not None else None

    @staticmethod
    def resolve_children(run: Run) -> list[dict[str, Any]]:
        return run_children(run.pk)

    @staticmethod
    def resolve_cancel_requested_by(run: Run) -> str | None:
        user = run.cancel_requested_by
        return user.get_username() if user is not None else None


def _totals(run: Run) -> LlmTotals:
    """The run's model-call totals, summed once per response."""
    totals: LlmTotals | None = getattr(run, "_llm_totals", None)
    if totals is None:
        totals = run_llm_totals(run.pk)
        run._llm_totals = totals  # type: ignore[attr-defined]
    return totals


class RunPageOut(PageOut):
    items: list[RunSummaryOut]


class PlanProblemOut(Schema):
    path: str
    code: str
    message: str


class PlanOut(ModelSchema):
    created_by: str | None
    errors: list[PlanProblemOut]
    document: Any = Field(
        description=(
            "The plan as submitted (after YAML/JSON parsing), with the parameter defaults of "
            "its tools filled in."
        )
    )
    rollback: list[Any]
    diff: dict[str, Any] | None = Field(
        None,
        description="A replanned version against its parent: step ids added, removed, "
        "changed (with each field's from and to) and kept.",
    )

    class Meta:
        model = Plan
        fields = ["id", "version", "parent", "source", "goal", "is_valid", "created_at"]

    @staticmethod
    def resolve_created_by(plan: Plan) -> str | None:
        return plan.created_by.get_username() if plan.created_by is not None else None

    @staticmethod
    def resolve_diff(plan: Plan) -> dict[str, Any] | None:
        return plan.diff if isinstance(plan.diff, dict) and plan.diff else None


class LockWaitOut(Schema):
    lock: str = Field(description="The resource lock key the step waits for.")
    held_by_run: int | None = Field(
        description="The run whose step holds it (null: earlier steps queue for it first)."
    )
    held_by_step: str | None = None
    message: str = Field(description="The same, in one line, as the run page shows it.")


class AttemptOut(Schema):
    attempt: int = Field(description="1 for the first call of the step's tool, then each retry.")
    status: str = Field(description="running, or how the attempt ended (failed, succeeded, ...).")
    error: str = Field(description="This attempt's own error ('' when it had none).")
    started_at: datetime
    finished_at: datetime | None


class PoolStepOut(Schema):
    queue: str = Field(description="The tool's queue.")
    status: str = Field(description="pending (waiting for a worker), running, succeeded, ...")
    worker: str = Field(description="The pool worker that took the call ('' while waiting).")
    message: str = Field(description="What the run page says, e.g. that no live worker serves it.")


class StepOut(ModelSchema):
    plan_version: int = Field(description="The plan version this step belongs to.")
    attempt_log: list[AttemptOut] = Field(
        default_factory=list,
        description="Every attempt of this step with its own outcome and error, oldest first.",
    )
    depends_on: list[str]
    params: dict[str, Any]
    result: Any
    undoes: str = Field(description="A rollback step: the main step it undoes ('' if none).")
    undone_by: list[str] = Field(
        default_factory=list,
        description="A rolled-back main step: the rollback step(s) that undid it.",
    )

    @staticmethod
    def resolve_undone_by(step: Step) -> list[str]:
        return list(getattr(step, "undone_by", []))

    @staticmethod
    def resolve_plan_version(step: Step) -> int:
        return int(getattr(step, "plan_version", None) or step.plan.version)

    @staticmethod
    def resolve_attempt_log(step: Step) -> list[dict[str, Any]]:
        return list(getattr(step, "attempt_log", []))

    locks: list[str] = Field(description="The step's own resource lock templates.")
    waiting_for_lock: LockWaitOut | None = Field(
        None, description="Set while the step waits for a resource lock another step holds."
    )

    @staticmethod
    def resolve_waiting_for_lock(step: Step) -> LockWaitOut | None:
        key = getattr(step, "lock_waiting", None)
        if not key:
            return None
        return LockWaitOut(
            lock=key,
            held_by_run=getattr(step, "lock_held_by_run", None),
            held_by_step=getattr(step, "lock_held_by_step", None),
            message=lock_wait_text(step),
        )

    pool: PoolStepOut | None = Field(
        None, description="Set for a step whose tool names a queue (an executor pool)."
    )

    @staticmethod
    def resolve_pool(step: Step) -> PoolStepOut | None:
        queue = getattr(step, "pool_queue", None)
        if not queue:
            return None
        return PoolStepOut(
            queue=queue,
            status=getattr(step, "pool_status", "") or "",
            worker=getattr(step, "pool_worker", "") or "",
            message=pool_wait_text(step),
        )

    idempotency_key: str = Field(
        description=(
            "Sent with every call of the step's tool (retries and crash takeovers alike): "
            "PLANNERWEB_IDEMPOTENCY_KEY, an Idempotency-Key header, an idempotency_key argument."
        )
    )

    @staticmethod
    def resolve_idempotency_key(step: Step) -> str:
        return str(step.idempotency_key)

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


# --------------------------------------------------------------------------- tokens


class CancelIn(In):
    """How to cancel: stop only (the default), or stop and undo what the run did."""

    rollback: bool = Field(
        False,
        description="Also undo the steps that succeeded (the run ends rolled_back).",
    )
    reason: str = Field("", max_length=2000, description="Why the run is cancelled (shown).")


class RetryIn(In):
    """Which failed step a retry starts from."""

    step: str = Field(..., min_length=1, max_length=100, description="A failed step's id.")


class AnswerIn(In):
    """The answer to the planner's clarifying question."""

    answer: str = Field(..., min_length=1, max_length=2000, description="Free text, or an option.")


class ConfirmIn(In):
    """The submitter's yes to the plan waiting for confirmation, as shown or edited."""

    plan_version: int | None = Field(
        None, ge=1, le=1_000_000, description="The version you looked at; another one is a 409."
    )
    plan: str | dict[str, Any] | None = Field(
        None,
        description="An edited plan (YAML or JSON text, or the document): stored as a new "
        "version and confirmed; left out, the waiting version is confirmed as it is.",
    )
    reason: str = Field("", max_length=2000)


class DiscardIn(In):
    """The submitter's no: the plan is discarded and the run ends cancelled."""

    plan_version: int | None = Field(None, ge=1, le=1_000_000)
    reason: str = Field("", max_length=2000)


class ElicitationAnswerIn(In):
    """The answer to a tool's question during a step's call (MCP elicitation)."""

    action: Literal["accept", "decline", "cancel"] = Field(
        ..., description="accept (with content), decline, or cancel."
    )
    content: dict[str, Any] | None = Field(
        None, description="With accept: the form's fields, valid against the requested schema."
    )


class ElicitationOut(Schema):
    """The question's item once answered."""

    item_id: int
    status: str
    action: str


class ResumeIn(DecisionIn, BudgetsIn):
    """A reviewer's action on an escalated run (what its open escalation item decides).

    Only the actions the item offers now are taken (its ``allowed_actions``); any
    other is answered 409 with the ``allowed`` list.
    """

    action: Literal[
        "retry", "skip", "edit", "write_plan", "raise_budget", "rollback", "abort", "mark_done"
    ] = Field(
        description=(
            "retry the stuck step (attempts kept), skip it (and what needs it), edit the plan "
            "and resume (finished steps carried over), write_plan (a run with no plan: the "
            "reviewer's plan runs), raise_budget (new `budget_*` limits, then resume where the "
            "run stopped), roll back, or abort (needs a reason). An incomplete rollback takes "
            "retry (its failed rollback step), mark_done (that step was undone by hand; needs a "
            "reason) or abort."
        )
    )
    plan_version: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description=(
            "The escalated plan version you reviewed (the item's `plan_version`); another "
            "version is refused with 409 `stale_plan`."
        ),
    )
    plan_hash: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="That version's `plan_hash`; a different one is 409 `stale_plan`.",
    )


class ForecastOut(Schema):
    plan_version: int
    median_seconds: float = Field(description="Critical path over each tool's median duration.")
    p90_seconds: float = Field(description="The same over each tool's p90 (a safe bound).")
    critical_path: list[str] = Field(description="Step keys along the median critical path.")
    without_history: list[str] = Field(description="Tools with no past step (counted as 0 s).")
    samples: int
    expected_cost: str | None = Field(description="US dollars; null with no priced model call.")
    spent_cost: str | None
    actual_seconds: float | None = Field(description="How long it ran, once it finished.")


class GoldenIn(In):
    """Which golden suite a finished run joins as a task (created when new)."""

    suite: str = Field(
        "golden",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        description="The suite's name: letters, digits, '.', '_' or '-'.",
    )


class GoldenOut(Schema):
    """The task a run became, and how to evaluate it."""

    suite: str
    task: str
    cassette: bool = Field(description="The run's recorded model answers were kept with it.")
    command: str
