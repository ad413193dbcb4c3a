"""Transcript event payloads: a pydantic discriminated union on ``kind``.

Every TranscriptEvent row's ``kind`` and ``payload`` round-trip through
``EVENT_ADAPTER``, so readers (pages, websocket clients, the CLI) can rely on
the shape of each kind. Each kind also says what happened in one line
(``summary``): the run page, the transcript page and the websocket frames all
show that text, so a line reads the same live and after a reload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# A summary longer than this is cut (with an ellipsis): it is one line of a table.
SUMMARY_LIMIT = 200


def _suffix(text: Any) -> str:
    return f": {text}" if text else ""


def _one_line(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def summary(self) -> str:
        """What happened, in one line of at most ``SUMMARY_LIMIT`` characters."""
        return _one_line(self.describe())

    def describe(self) -> str:
        """What happened, in words (each kind says it its way; ``summary`` cuts it to one line)."""
        return json.dumps(event_payload(self), ensure_ascii=False)


class RunCreated(_Event):
    kind: Literal["run.created"] = "run.created"
    task: str
    submitted_by: str | None = None

    def describe(self) -> str:
        return f"task '{self.task}' submitted by {self.submitted_by or 'the system'}"


class RunStatusChanged(_Event):
    kind: Literal["run.status"] = "run.status"
    from_status: str
    to_status: str
    reason: str = ""

    def describe(self) -> str:
        return f"run {self.from_status} → {self.to_status}" + _suffix(self.reason)


class RunCancelRequested(_Event):
    kind: Literal["run.cancel_requested"] = "run.cancel_requested"
    by: str | None = None
    rollback: bool = False  # cancel and roll back: undo what the run did
    reason: str = ""

    def describe(self) -> str:
        what = "cancel and roll back" if self.rollback else "cancel"
        return f"{what} requested by {self.by or 'the system'}" + _suffix(self.reason)


class RollbackPlanned(_Event):
    """The rollback's decisions: what it will undo, in which order, and what it skips."""

    kind: Literal["rollback.planned"] = "rollback.planned"
    order: list[str] = Field(default_factory=list)  # rollback step keys, in start order
    skipped: list[str] = Field(default_factory=list)  # linked to a step that did not succeed

    def describe(self) -> str:
        text = f"rollback: {', '.join(self.order) or 'nothing to run'}"
        return text + (f" (skipped: {', '.join(self.skipped)})" if self.skipped else "")


class PlanCreated(_Event):
    kind: Literal["plan.created"] = "plan.created"
    plan_id: int
    version: int
    source: str
    valid: bool
    steps: int
    errors: list[dict[str, Any]] = Field(default_factory=list)

    def describe(self) -> str:
        if self.valid:
            return f"plan v{self.version} ({self.source}): {self.steps} steps"
        first = self.errors[0].get("message", "") if self.errors else ""
        return (
            f"plan v{self.version} ({self.source}) is invalid: "
            f"{len(self.errors)} problem(s)" + _suffix(first)
        )


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

    def describe(self) -> str:
        return self.line(
            self.step, self.from_status, self.to_status, self.attempt, self.error or self.reason
        )

    @staticmethod
    def line(step: str, from_status: str, to_status: str, attempt: int, why: str) -> str:
        """The words of a step's change, from its fields (the executor's encoded events too)."""
        tried = f" (attempt {attempt})" if attempt > 1 else ""
        return f"{step} {from_status} → {to_status}{tried}" + _suffix(why)


class StepRetrying(_Event):
    kind: Literal["step.retrying"] = "step.retrying"
    step_id: int
    step: str
    attempt: int
    delay_seconds: float
    error: str

    def describe(self) -> str:
        return f"{self.step} retries (attempt {self.attempt}) in {self.delay_seconds}s" + _suffix(
            self.error
        )


class StepQueued(_Event):
    """A step whose tool names a queue waits for a worker of that pool."""

    kind: Literal["step.queued"] = "step.queued"
    step_id: int
    step: str
    queue: str
    attempt: int = 1
    live_workers: int = 0

    def describe(self) -> str:
        text = f"{self.step} waiting for a worker on queue {self.queue}"
        return text if self.live_workers else text + " (no live worker serves it)"


class StepClaimed(_Event):
    """A pool worker took a queued step and calls its tool."""

    kind: Literal["step.claimed"] = "step.claimed"
    step_id: int
    step: str
    queue: str
    worker: str

    def describe(self) -> str:
        return f"{self.step} running on worker {self.worker} (queue {self.queue})"


class StepLockWaiting(_Event):
    """A step waits for a resource lock another step holds (or that others queue for first)."""

    kind: Literal["step.lock_waiting"] = "step.lock_waiting"
    step_id: int
    step: str
    lock: str
    held_by_run: int | None = None
    held_by_step: str = ""

    def describe(self) -> str:
        if self.held_by_run is None:
            return f"{self.step} waiting for lock {self.lock}, queued behind earlier steps"
        return f"{self.step} waiting for lock {self.lock}, held by run {self.held_by_run}" + (
            f" (step {self.held_by_step})" if self.held_by_step else ""
        )


class StepLockAcquired(_Event):
    """A step took its resource locks; it starts next."""

    kind: Literal["step.lock_acquired"] = "step.lock_acquired"
    step_id: int
    step: str
    locks: list[str]

    def describe(self) -> str:
        return f"{self.step} took lock{'s' if len(self.locks) > 1 else ''} {', '.join(self.locks)}"


class RunRetried(_Event):
    """A new run retries ``of_run`` from its failed ``step`` (written in both transcripts)."""

    kind: Literal["run.retried"] = "run.retried"
    of_run: int
    step: str
    carried_over: list[str] = Field(default_factory=list)
    by: str | None = None
    new_run: int | None = None  # the retrying run (both transcripts; None in older events)

    def describe(self) -> str:
        text = (
            f"run {self.of_run} retried from step {self.step} as run {self.new_run}"
            if self.new_run
            else f"retry of run {self.of_run} from step {self.step}"
        )
        carried = ", ".join(self.carried_over)
        return text + (f"; carried over {carried}" if carried else "")


class PlaybookSaved(_Event):
    """An operator or reviewer kept this run's plan as a playbook the offline planner reuses."""

    kind: Literal["playbook.saved"] = "playbook.saved"
    name: str
    by: str | None = None

    def describe(self) -> str:
        return f"plan saved as playbook {self.name} by {self.by or 'the system'}"


class RunRequeued(_Event):
    """A run found without a live worker (lease expired, or its task lost) was queued again."""

    kind: Literal["run.requeued"] = "run.requeued"
    reason: str

    def describe(self) -> str:
        return "run queued again" + _suffix(self.reason)


class SubplanStarted(_Event):
    """A ``subplan`` step was reached: its goal goes to a child run, planned and approved on its own."""

    kind: Literal["subplan.started"] = "subplan.started"
    step_id: int
    step: str
    child_run_id: int
    goal: str
    planner: str = ""
    policy: str = ""

    def describe(self) -> str:
        return f"step {self.step}: child run {self.child_run_id} plans '{self.goal}'"


class SubplanFinished(_Event):
    """A subplan step's child run stopped; the parent goes on with its outcome."""

    kind: Literal["subplan.finished"] = "subplan.finished"
    step: str
    child_run_id: int
    status: str
    reason: str = ""

    def describe(self) -> str:
        return f"step {self.step}: child run {self.child_run_id} {self.status}" + _suffix(
            self.reason
        )


class HandoffTaken(_Event):
    """The planner handed the rest of the work to a registered workflow."""

    kind: Literal["planner.handoff"] = "planner.handoff"
    workflow: str
    params: dict[str, Any] = Field(default_factory=dict)
    steps: int = 0

    def describe(self) -> str:
        return f"handed off to workflow {self.workflow} ({self.steps} steps)"


_REVIEW_KINDS = {
    "plan_approval": "plan approval",
    "step_gate": "step gate",
    "escalation": "escalation",
}


def _review_what(review_kind: str) -> str:
    return _REVIEW_KINDS.get(review_kind, review_kind or "review")


class ReviewOpened(_Event):
    kind: Literal["review.opened"] = "review.opened"
    item_id: int
    review_kind: str
    reason: str = ""
    plan_version: int | None = None
    step: str | None = None
    required_approvals: int = 1

    def describe(self) -> str:
        target = f" of plan v{self.plan_version}" if self.plan_version else ""
        target += f" at step {self.step}" if self.step else ""
        quorum = (
            f", {self.required_approvals} approvals needed" if self.required_approvals > 1 else ""
        )
        return (
            f"review {self.item_id} opened: {_review_what(self.review_kind)}{target}{quorum}"
            + _suffix(self.reason)
        )


class ReviewAssigned(_Event):
    kind: Literal["review.assigned"] = "review.assigned"
    item_id: int
    assignee: str | None = None
    by: str | None = None

    def describe(self) -> str:
        by = f" by {self.by}" if self.by and self.by != self.assignee else ""
        return f"review {self.item_id} assigned to {self.assignee or 'nobody'}{by}"


class ReviewApprovalAdded(_Event):
    kind: Literal["review.approval"] = "review.approval"
    item_id: int
    by: str
    approvals: int
    required: int

    def describe(self) -> str:
        return f"review {self.item_id}: approval by {self.by} ({self.approvals} of {self.required})"


class ReviewPlanSaved(_Event):
    """A reviewer saved an edit: the item now reviews that version; earlier approvals are void."""

    kind: Literal["review.plan_saved"] = "review.plan_saved"
    item_id: int
    by: str
    plan_version: int
    approvals_reset: int = 0

    def describe(self) -> str:
        n = self.approvals_reset
        reset = f"; {n} approval{'s' * (n != 1)} of the earlier version dropped" if n else ""
        return (
            f"review {self.item_id}: plan v{self.plan_version} saved by {self.by}, "
            f"waiting for approval{reset}"
        )


class ReviewDecided(_Event):
    kind: Literal["review.decided"] = "review.decided"
    item_id: int
    review_kind: str
    status: str
    decision: str
    by: str | None = None
    reason: str = ""
    plan_version: int | None = None

    def describe(self) -> str:
        plan = f", plan v{self.plan_version}" if self.plan_version else ""
        return (
            f"review {self.item_id} ({_review_what(self.review_kind)}) {self.status} "
            f"by {self.by or 'the system'}{plan}" + _suffix(self.reason)
        )


class PlannerCall(_Event):
    """One language-model call; prompt and response are stored redacted (runs/redaction.py)."""

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
    price: str = ""  # which price gave ``cost`` (runs.planning.pricing)
    ok: bool = True
    refusal: str = ""
    error: str = ""
    step: str = ""  # the step an llm tool call answered for; "" for planning calls

    def describe(self) -> str:
        purpose = f"step {self.step!r}" if self.step else self.purpose
        return (
            f"{self.provider} {self.model} call for {purpose}: "
            f"{self.tokens_in} tokens in, {self.tokens_out} out, "
            f"{self.latency_ms} ms" + _suffix(self.error or self.refusal)
        )


class PlannerDecision(_Event):
    """What the planner settled on: which planner/mode produced the plan, or why none did."""

    kind: Literal["planner.decision"] = "planner.decision"
    planner: str
    mode: str
    ok: bool
    confidence: float | None = None
    detail: str = ""
    totals: dict[str, Any] = Field(default_factory=dict)
    # Parameters filled from the task's values: parameter, task_value, replaced, before, after.
    substitutions: list[dict[str, str]] = Field(default_factory=list)
    # A model planner reused an approved plan: from which case, and the model tokens saved.
    reused_from: str = ""
    saved_tokens: int = 0

    def describe(self) -> str:
        outcome = "produced a plan" if self.ok else "gave up"
        return f"planner {self.planner} ({self.mode}) {outcome}" + _suffix(self.detail)


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

    def describe(self) -> str:
        if self.stop:
            return f"planner step {self.number}: stop" + _suffix(self.thought)
        chosen = f"{self.step} ({self.tool})" if self.tool else str(self.step)
        return f"planner step {self.number}: {chosen}" + _suffix(self.thought)


class PlanDiff(_Event):
    kind: Literal["plan.diff"] = "plan.diff"
    plan_id: int
    version: int
    parent_version: int
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[dict[str, Any]] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        return (
            f"plan v{self.version} from v{self.parent_version}: "
            f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed"
        )


class FailureReport(_Event):
    """Why a run gave up after replanning, and what it had achieved by then."""

    kind: Literal["run.failure_report"] = "run.failure_report"
    reason: str
    replans: int
    succeeded: list[dict[str, Any]] = Field(default_factory=list)
    failed: list[dict[str, Any]] = Field(default_factory=list)

    def describe(self) -> str:
        return f"gave up after {self.replans} replan(s)" + _suffix(self.reason)


class StepVerdict(_Event):
    """The evaluator's judgement of a step's result (role ``evaluator``)."""

    kind: Literal["step.verdict"] = "step.verdict"
    step_id: int
    step: str
    status: str  # pass | warn | fail
    reason: str = ""
    check: str = ""

    def describe(self) -> str:
        return f"{self.step} judged {self.status}" + _suffix(self.reason)


class AgentToolCall(_Event):
    """One tool call an agent step made (or was refused), nested under that step."""

    kind: Literal["agent.tool_call"] = "agent.tool_call"
    step: str
    index: int
    tool: str
    status: str  # started | succeeded | failed | refused | redo
    params: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    error: str = ""

    def describe(self) -> str:
        return f"{self.step} agent call {self.index} to {self.tool}: {self.status}" + _suffix(
            self.error
        )


class QuestionAsked(_Event):
    """The planner asked the task's submitter a question instead of planning."""

    kind: Literal["question.asked"] = "question.asked"
    item_id: int
    number: int
    question: str
    options: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        return f"planner asks (question {self.number}): {self.question}"


class QuestionAnswered(_Event):
    kind: Literal["question.answered"] = "question.answered"
    item_id: int
    question: str
    answer: str
    by: str | None = None

    def describe(self) -> str:
        return f"{self.by or 'the system'} answered: {self.answer}"


class ElicitationAsked(_Event):
    """A step's tool (an MCP server) asked for input mid-call; the call waits for the answer."""

    kind: Literal["elicitation.asked"] = "elicitation.asked"
    item_id: int
    step: str
    server: str
    tool: str
    message: str
    requested_schema: dict[str, Any] = Field(default_factory=dict)

    def describe(self) -> str:
        return f"step {self.step}: MCP server {self.server} asks: {self.message}"


class ElicitationAnswered(_Event):
    """The answer sent back to the server (``cancel`` with a reason when the wait ended unanswered)."""

    kind: Literal["elicitation.answered"] = "elicitation.answered"
    item_id: int
    step: str
    action: Literal["accept", "decline", "cancel"]
    content: dict[str, Any] | None = None
    by: str | None = None
    reason: str = ""

    def describe(self) -> str:
        who = self.by or "the system"
        if self.action == "accept":
            return f"step {self.step}: {who} answered the server's question"
        return f"step {self.step}: {who} answered {self.action}" + (
            f" ({self.reason})" if self.reason else ""
        )


TranscriptPayload = Annotated[
    RunCreated
    | RunStatusChanged
    | RunCancelRequested
    | RollbackPlanned
    | PlanCreated
    | StepStatusChanged
    | StepRetrying
    | StepLockWaiting
    | StepLockAcquired
    | StepQueued
    | StepClaimed
    | RunRequeued
    | RunRetried
    | PlaybookSaved
    | ReviewOpened
    | ReviewAssigned
    | ReviewApprovalAdded
    | ReviewPlanSaved
    | ReviewDecided
    | PlannerCall
    | PlannerDecision
    | PlannerStep
    | PlanDiff
    | FailureReport
    | StepVerdict
    | AgentToolCall
    | QuestionAsked
    | QuestionAnswered
    | SubplanStarted
    | SubplanFinished
    | HandoffTaken
    | ElicitationAsked
    | ElicitationAnswered,
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


# Each kind's class, to read a stored payload (which has no ``kind``) straight from its JSON text.
EVENT_CLASSES: dict[str, type[_Event]] = {
    cls.model_fields["kind"].default: cls for cls in get_args(get_args(TranscriptPayload)[0])
}


def event_summary(kind: str, payload: Any) -> str:
    """A stored event's one-line summary; a payload its kind does not accept is shown as JSON."""
    cls = EVENT_CLASSES.get(kind)
    if cls is not None and isinstance(payload, dict):
        try:
            return cls.model_validate(payload).summary()
        except ValidationError:
            pass
    return _one_line(json.dumps(payload, ensure_ascii=False, default=str))


def event_summary_json(kind: str, payload_json: str) -> str:
    """``event_summary`` of a payload given as its stored JSON text (parsed by pydantic-core)."""
    cls = EVENT_CLASSES.get(kind)
    if cls is not None:
        try:
            return cls.model_validate_json(payload_json).summary()
        except ValidationError:
            pass
    return event_summary(kind, json.loads(payload_json))


@dataclass(slots=True)  # not frozen: a frozen init costs 4x, two a step
class EncodedEvent:
    """An event already in its stored form (``event_json``'s text), for the executor's hot path."""

    kind: str
    json: str
    summary: str


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
    line = StepStatusChanged.line(step, from_status, to_status, attempt, error or reason)
    return EncodedEvent(
        "step.status",
        f'{{"step_id":{step_id},"step":{encode_basestring(step)},'
        f'"phase":{encode_basestring(phase)},"from_status":{encode_basestring(from_status)},'
        f'"to_status":{encode_basestring(to_status)},"attempt":{attempt},'
        f'"result":{result_json},"error":{encode_basestring(error)},'
        f'"reason":{encode_basestring(reason)}}}',
        _one_line(line),
    )
