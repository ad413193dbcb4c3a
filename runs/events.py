"""Transcript event payloads: a pydantic discriminated union on ``kind``.

Every TranscriptEvent row's ``kind`` and ``payload`` round-trip through
``EVENT_ADAPTER``, so readers (pages, websocket clients, the CLI) can rely on
the shape of each kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunCreated(_Event):
    kind: Literal["run.created"] = "run.created"
    task: str
    submitted_by: str | None = None


class RunStatusChanged(_Event):
    kind: Literal["run.status"] = "run.status"
    from_status: str
    to_status: str
    reason: str = ""


class RunCancelRequested(_Event):
    kind: Literal["run.cancel_requested"] = "run.cancel_requested"
    by: str | None = None


class PlanCreated(_Event):
    kind: Literal["plan.created"] = "plan.created"
    plan_id: int
    version: int
    source: str
    valid: bool
    steps: int
    errors: list[dict[str, Any]] = Field(default_factory=list)


class StepStatusChanged(_Event):
    kind: Literal["step.status"] = "step.status"
    step_id: int
    step: str
    phase: str = "main"
    from_status: str
    to_status: str
    attempt: int = 0
    result: Any = None
    error: str = ""
    reason: str = ""


class StepRetrying(_Event):
    kind: Literal["step.retrying"] = "step.retrying"
    step_id: int
    step: str
    attempt: int
    delay_seconds: float
    error: str


class RunRetried(_Event):
    """A new run retries ``of_run`` from its failed ``step`` (written in both transcripts)."""

    kind: Literal["run.retried"] = "run.retried"
    of_run: int
    step: str
    carried_over: list[str] = Field(default_factory=list)
    by: str | None = None
    new_run: int | None = None  # set in the old run's transcript


class RunRequeued(_Event):
    """A run found without a live worker (lease expired, or its task lost) was queued again."""

    kind: Literal["run.requeued"] = "run.requeued"
    reason: str


class ReviewOpened(_Event):
    kind: Literal["review.opened"] = "review.opened"
    item_id: int
    review_kind: str
    reason: str = ""
    plan_version: int | None = None
    step: str | None = None
    required_approvals: int = 1


class ReviewAssigned(_Event):
    kind: Literal["review.assigned"] = "review.assigned"
    item_id: int
    assignee: str | None = None
    by: str | None = None


class ReviewApprovalAdded(_Event):
    kind: Literal["review.approval"] = "review.approval"
    item_id: int
    by: str
    approvals: int
    required: int


class ReviewDecided(_Event):
    kind: Literal["review.decided"] = "review.decided"
    item_id: int
    review_kind: str
    status: str
    decision: str
    by: str | None = None
    reason: str = ""
    plan_version: int | None = None


class PlannerCall(_Event):
    """One language-model call; prompt and response are stored redacted (runs/planning/redact.py)."""

    kind: Literal["planner.call"] = "planner.call"
    call_id: int | None = None
    provider: str
    model: str
    purpose: str
    attempt: int = 1
    prompt: list[dict[str, Any]] = Field(default_factory=list)
    response: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    cost: float | None = None
    ok: bool = True
    refusal: str = ""
    error: str = ""


class PlannerDecision(_Event):
    """What the planner settled on: which planner/mode produced the plan, or why none did."""

    kind: Literal["planner.decision"] = "planner.decision"
    planner: str
    mode: str
    ok: bool
    confidence: float | None = None
    detail: str = ""
    totals: dict[str, Any] = Field(default_factory=dict)


class PlannerStep(_Event):
    """Iterative mode: one step the planner chose (or its decision to stop), with its reasoning."""

    kind: Literal["planner.step"] = "planner.step"
    number: int
    plan_id: int | None = None
    version: int | None = None
    step: str | None = None
    thought: str = ""
    next_step: str = ""
    tool: str | None = None
    stop: bool = False
    confidence: float | None = None


class PlanDiff(_Event):
    kind: Literal["plan.diff"] = "plan.diff"
    plan_id: int
    version: int
    parent_version: int
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[dict[str, Any]] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list)


class FailureReport(_Event):
    """Why a run gave up after replanning, and what it had achieved by then."""

    kind: Literal["run.failure_report"] = "run.failure_report"
    reason: str
    replans: int
    succeeded: list[dict[str, Any]] = Field(default_factory=list)
    failed: list[dict[str, Any]] = Field(default_factory=list)


class StepVerdict(_Event):
    """The evaluator's judgement of a step's result (role ``evaluator``)."""

    kind: Literal["step.verdict"] = "step.verdict"
    step_id: int
    step: str
    status: str  # pass | warn | fail
    reason: str = ""
    check: str = ""


TranscriptPayload = Annotated[
    RunCreated
    | RunStatusChanged
    | RunCancelRequested
    | PlanCreated
    | StepStatusChanged
    | StepRetrying
    | RunRequeued
    | RunRetried
    | ReviewOpened
    | ReviewAssigned
    | ReviewApprovalAdded
    | ReviewDecided
    | PlannerCall
    | PlannerDecision
    | PlannerStep
    | PlanDiff
    | FailureReport
    | StepVerdict,
    Field(discriminator="kind"),
]
EVENT_ADAPTER: TypeAdapter[TranscriptPayload] = TypeAdapter(TranscriptPayload)


def event_payload(event: _Event) -> dict[str, Any]:
    """The JSON stored in TranscriptEvent.payload (``kind`` lives in its own column)."""
    return event.model_dump(mode="json", exclude={"kind"})


def event_json(event: _Event) -> str:
    """``event_payload`` as JSON text, serialised by pydantic-core (several times faster)."""
    return event.model_dump_json(exclude={"kind"})


def event_parse(kind: str, payload: dict[str, Any]) -> TranscriptPayload:
    return EVENT_ADAPTER.validate_python({**payload, "kind": kind})


@dataclass(slots=True)  # not frozen: a frozen init costs 4x, two a step
class EncodedEvent:
    """An event already in its stored form (``event_json``'s text), for the executor's hot path."""

    kind: str
    json: str


def step_status_json(
    *,
    step_id: int,
    step: str,
    phase: str,
    from_status: str,
    to_status: str,
    attempt: int,
    result_json: str = "null",
    error: str = "",
    reason: str = "",
) -> EncodedEvent:
    """A ``StepStatusChanged`` event encoded without building the model (~3 µs less a change).

    The executor writes two per step, from values it controls (``step_id`` and
    ``attempt`` are ints: a format spec such as ``:d`` would cost a ``__format__``
    call each); the result is JSON text already (the executor checked it
    serialises). Tests hold the output equal to ``event_json(StepStatusChanged(...))``
    as JSON, field for field.
    """
    return EncodedEvent(
        "step.status",
        f'{{"step_id":{step_id},"step":{encode_basestring(step)},'
        f'"phase":{encode_basestring(phase)},"from_status":{encode_basestring(from_status)},'
        f'"to_status":{encode_basestring(to_status)},"attempt":{attempt},'
        f'"result":{result_json},"error":{encode_basestring(error)},'
        f'"reason":{encode_basestring(reason)}}}',
    )
