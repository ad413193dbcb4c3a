"""The run and step state machines: the only place that says which status may follow which.

Two writers use these tables:
1. ``run_transition`` / ``steps_cancel`` here, for request-time changes
   (cancel, create): row lock, check, write state + TranscriptEvent in one
   transaction, publish after commit.
2. ``runs.execution.journal`` for the executor's hot path, which batches many
   checked transitions into one transaction (compare-and-swap on the old status).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from runs.events import RunStatusChanged, StepStatusChanged, _Event, event_payload, event_summary
from runs.models import ResourceLock, Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.publish import outgoing_rows, publisher
from runs.redaction import Redactor

R = RunStatus
S = StepStatus

_QS = TypeVar("_QS", bound=QuerySet[Any])

RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    # -> rolling_back: an operator's "cancel and roll back" of a run no worker holds.
    R.QUEUED: frozenset(
        {R.PLANNING, R.AWAITING_APPROVAL, R.EXECUTING, R.ROLLING_BACK, R.FAILED, R.CANCELLED}
    ),
    R.PLANNING: frozenset(
        {R.AWAITING_APPROVAL, R.AWAITING_INPUT, R.EXECUTING, R.FAILED, R.ESCALATED, R.CANCELLED}
    ),
    # The planner asked a question: answered -> queued (planned, or its next step chosen, with
    # the answer); unanswered past its SLA -> the clarification kind's timeout action.
    R.AWAITING_INPUT: frozenset({R.QUEUED, R.FAILED, R.ESCALATED, R.CANCELLED}),
    # -> queued: a reviewer approved; the run goes back to the queue for any worker.
    R.AWAITING_APPROVAL: frozenset({R.QUEUED, R.EXECUTING, R.ROLLING_BACK, R.FAILED, R.CANCELLED}),
    # A subplan step's child run finished -> queued (the parent goes on with its outcome).
    R.AWAITING_CHILD: frozenset({R.QUEUED, R.ROLLING_BACK, R.FAILED, R.CANCELLED}),
    # -> awaiting_input: the iterative planner asked a question instead of its next step.
    R.EXECUTING: frozenset(
        {
            R.AWAITING_APPROVAL,
            R.AWAITING_CHILD,
            R.AWAITING_INPUT,
            R.REPLANNING,
            R.ROLLING_BACK,
            R.SUCCEEDED,
            R.FAILED,
            R.ESCALATED,
            R.CANCELLED,
        }
    ),
    R.REPLANNING: frozenset(
        {R.AWAITING_APPROVAL, R.EXECUTING, R.ROLLING_BACK, R.FAILED, R.ESCALATED, R.CANCELLED}
    ),
    R.ROLLING_BACK: frozenset({R.ROLLED_BACK, R.FAILED, R.ESCALATED, R.CANCELLED}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
    R.ROLLED_BACK: frozenset(),
    R.ESCALATED: frozenset(),
    R.CANCELLED: frozenset(),
}
RUN_TERMINAL = frozenset(s for s, nxt in RUN_TRANSITIONS.items() if not nxt)
# Runs that a worker is (or should be) executing right now.
RUN_ACTIVE = frozenset({R.EXECUTING, R.REPLANNING, R.ROLLING_BACK})

STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    # running -> running is a retry (attempts goes up); running -> pending is
    # crash recovery handing an idempotent step back to the scheduler.
    S.PENDING: frozenset({S.RUNNING, S.SKIPPED, S.CANCELLED}),
    S.RUNNING: frozenset({S.RUNNING, S.PENDING, S.SUCCEEDED, S.FAILED, S.CANCELLED}),
    S.SUCCEEDED: frozenset({S.ROLLED_BACK}),
    S.FAILED: frozenset(),
    S.SKIPPED: frozenset(),
    S.CANCELLED: frozenset(),
    S.ROLLED_BACK: frozenset(),
}
STEP_FINISHED = frozenset({S.SUCCEEDED, S.FAILED, S.SKIPPED, S.CANCELLED, S.ROLLED_BACK})

# Reopening: only a reviewer's decision on an escalation (runs.lifecycle.resume), and a
# parent's rollback reaching its succeeded child runs, take these, through ``run_transition(reopen=True)`` and ``step_reopen``. ``escalated``
# stays terminal for everything else: the run holds no worker, no lease, and shows as
# stopped until (and unless) a reviewer resumes it.
RUN_REOPEN: dict[str, frozenset[str]] = {
    R.ESCALATED: frozenset({R.QUEUED, R.ROLLING_BACK, R.CANCELLED}),
    # A child run whose parent rolled back is undone too (runs.lifecycle.subplan_links).
    R.SUCCEEDED: frozenset({R.ROLLING_BACK}),
}
STEP_REOPEN: dict[str, frozenset[str]] = {
    # retry / skip the failed step; a failed rollback step marked done by hand
    S.FAILED: frozenset({S.PENDING, S.SKIPPED, S.SUCCEEDED}),
    S.SKIPPED: frozenset({S.PENDING}),  # steps the stop skipped run after all
    S.RUNNING: frozenset({S.PENDING, S.SKIPPED, S.FAILED}),  # a step that may have partly run
    S.PENDING: frozenset({S.SKIPPED}),
    S.SUCCEEDED: frozenset({S.ROLLED_BACK}),  # undone by a rollback step marked done by hand
}


class TransitionError(Exception):
    """An illegal status change; nothing was written."""

    def __init__(self, what: str, current: str, target: str) -> None:
        super().__init__(f"{what} cannot go from {str(current)!r} to {str(target)!r}")
        self.what = what
        self.current = current
        self.target = target


class LeaseLost(TransitionError):
    """The caller's lease on the run has passed to another worker; nothing was written."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)


def check_run_transition(current: str, target: str, *, what: str = "run") -> None:
    if target not in RUN_TRANSITIONS.get(current, frozenset()):
        raise TransitionError(what, current, target)


def check_step_transition(current: str, target: str, *, what: str = "step") -> None:
    if target not in STEP_TRANSITIONS.get(current, frozenset()):
        raise TransitionError(what, current, target)


def check_run_reopen(current: str, target: str, *, what: str = "run") -> None:
    if target not in RUN_REOPEN.get(current, frozenset()):
        raise TransitionError(what, current, target)


@dataclass(frozen=True)
class NewEvent:
    role: str
    event: _Event


def lock_rows(qs: _QS) -> _QS:
    # SQLite has no row locks; its IMMEDIATE transactions already serialise writers.
    return (
        qs.select_for_update()
        if transaction.get_connection().features.has_select_for_update
        else qs
    )


@transaction.atomic(durable=False)
def append_events(run_id: int, events: Iterable[NewEvent]) -> list[TranscriptEvent]:
    """Append events to a run's transcript with gap-free seqs (joins the caller's transaction).

    Seqs are ``MAX(seq) + 1`` taken under the run's write lock (the run row on
    PostgreSQL, the database write lock on SQLite): every writer (this function
    and ``runs.execution.journal``) follows the same rule, so seqs never collide
    or skip, and the unique (run, seq) index is the final guard.
    """
    events = list(events)
    if not events:
        return []
    lock_rows(Run.objects.filter(pk=run_id)).values_list("pk", flat=True).get()
    last = TranscriptEvent.objects.filter(run_id=run_id).aggregate(m=Max("seq"))["m"] or 0
    now = timezone.now()
    red = Redactor(run_id)
    rows, summaries = [], []
    for i, e in enumerate(events):
        kind = e.event.kind  # type: ignore[attr-defined]
        raw = event_payload(e.event)
        payload = red.value(raw)  # every payload is redacted before it is stored
        rows.append(
            TranscriptEvent(
                run_id=run_id,
                seq=last + i + 1,
                role=e.role,
                kind=kind,
                payload=payload,
                created_at=now,
            )
        )
        summaries.append(e.event.summary() if payload == raw else event_summary(kind, payload))
    TranscriptEvent.objects.bulk_create(rows)
    transaction.on_commit(lambda: publisher.submit(run_id, outgoing_rows(rows, summaries)))
    return rows


@transaction.atomic
def run_transition(
    *,
    run_id: int,
    to: str,
    reason: str = "",
    role: str = TranscriptEvent.Role.SYSTEM,
    extra_events: Iterable[NewEvent] = (),
    fence: str | None = None,
    reopen: bool = False,
    **fields: object,
) -> Run:
    """Move a run to ``to`` (checked under a row lock) and record it in the transcript.

    ``fence``: the lease token the caller works under (see ``runs.lifecycle.claim.run_claim``);
    when the run carries another one, raise ``LeaseLost`` instead. ``reopen``: a
    reviewer's decision resumes a stopped run (``RUN_REOPEN``); the stop is cleared.
    """
    run = lock_rows(Run.objects.filter(pk=run_id)).get()
    reason = Redactor(run_id).text(reason)  # stored as the stop reason
    if fence is not None and run.lease_owner != fence:
        raise LeaseLost(
            f"run {run_id} is leased to {run.lease_owner or 'nobody'!r} now, not {fence!r}"
        )
    if reopen:
        check_run_reopen(run.status, to, what=f"run {run_id}")
        if to not in RUN_TERMINAL:
            fields = {"finished_at": None, "stop_reason": "", **fields}
    else:
        check_run_transition(run.status, to, what=f"run {run_id}")
    previous = run.status
    run.status = to
    update_fields = ["status", *fields]
    for name, value in fields.items():
        setattr(run, name, value)
    now = timezone.now()
    if to in RUN_ACTIVE and run.started_at is None:
        run.started_at = now
        update_fields.append("started_at")
    if to in RUN_TERMINAL:
        run.finished_at = now
        run.stop_reason = reason
        run.lease_owner = ""
        run.lease_expires_at = None
        update_fields += ["finished_at", "stop_reason", "lease_owner", "lease_expires_at"]
    run.save(update_fields=sorted(set(update_fields)))
    if to not in RUN_ACTIVE:  # a run that stops (or waits for a person) holds no resource
        ResourceLock.objects.filter(run_id=run_id).delete()
    append_events(
        run_id,
        [
            *extra_events,
            NewEvent(role, RunStatusChanged(from_status=previous, to_status=to, reason=reason)),
        ],
    )
    return run


def steps_cancel(
    *, run_id: int, reason: str, role: str, phase: str | None = None
) -> list[NewEvent]:
    """Cancel every unfinished step (of ``phase``, if given) of a run nobody executes.

    Call inside a transaction. Returns the step events for the caller to append
    together with the run's own transition, so the transcript reads steps first,
    then the run.
    """
    now = timezone.now()
    events = []
    unfinished = Step.objects.filter(run_id=run_id, status__in=[S.PENDING, S.RUNNING])
    if phase is not None:
        unfinished = unfinished.filter(phase=phase)
    for step_id, key, phase, status in lock_rows(unfinished).values_list(
        "pk", "key", "phase", "status"
    ):
        check_step_transition(status, S.CANCELLED, what=f"step {key!r}")
        events.append(
            NewEvent(
                role,
                StepStatusChanged(
                    step_id=step_id,
                    step=key,
                    phase=phase,
                    from_status=status,
                    to_status=S.CANCELLED,
                    reason=reason,
                ),
            )
        )
    unfinished.update(status=S.CANCELLED, finished_at=now)
    return events


def step_reopen(*, step: Step, to: str, reason: str, role: str, **fields: object) -> NewEvent:
    """A reviewer's change to a stopped run's step (``STEP_REOPEN``); returns its event.

    Call inside the decision's transaction, with the run parked (nobody executes it).
    """
    if to not in STEP_REOPEN.get(step.status, frozenset()):
        raise TransitionError(f"step {step.key!r}", step.status, to)
    previous = step.status
    step.status = to
    red = Redactor(step.run_id)
    reason = red.text(reason)
    for name, value in fields.items():
        setattr(step, name, red.value(value) if name in ("result", "error") else value)
    if to == S.PENDING:
        step.started_at = step.finished_at = None
    elif step.finished_at is None:
        step.finished_at = timezone.now()
    step.save(update_fields=sorted({"status", "started_at", "finished_at", *fields}))
    return NewEvent(
        role,
        StepStatusChanged(
            step_id=step.pk,
            step=step.key,
            phase=step.phase,
            from_status=previous,
            to_status=to,
            attempt=step.attempts,
            reason=reason,
        ),
    )
