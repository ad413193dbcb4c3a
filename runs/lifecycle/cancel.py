"""Ending a run early: an operator's cancel (with or without rollback), or a decision that stops it."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from reviews.decisions import decided_event, item_audit, item_state, locked_item
from reviews.models import ReviewItem, ReviewKind, ReviewStatus
from reviews.statemachine import review_transition
from runs.events import RunCancelRequested
from runs.execution.engine import notify_cancel
from runs.lifecycle.dispatch import enqueue_resume
from runs.lifecycle.errors import RunError
from runs.lifecycle.subplan_links import run_stop_children, subplan_wake_parent
from runs.models import Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.permissions import username
from runs.pools import remote_step_cancel
from runs.redaction import Redactor
from runs.selectors import run_is_archived
from runs.statemachine import (
    RUN_ACTIVE,
    RUN_TERMINAL,
    NewEvent,
    TransitionError,
    append_events,
    lock_rows,
    run_transition,
    steps_cancel,
)

SUPERVISOR = TranscriptEvent.Role.SUPERVISOR


def cancel_text(by: str | None, reason: str) -> str:
    """Who cancelled and why, as a stop reason."""
    text = f"cancelled by {by}" if by else "cancelled"
    return f"{text}: {reason}" if reason else text


@transaction.atomic
def run_cancel(*, run_id: int, user: User | None, rollback: bool = False, reason: str = "") -> Run:
    """An operator's cancel: refused once the run ended, else stopped with their name and why.

    An executing run's worker sees the request (at once in this process, within a
    heartbeat elsewhere), kills running steps and ends the run ``cancelled``, or,
    with ``rollback``, undoes what succeeded and ends it ``rolled_back``. A run no
    worker holds is cancelled here, or moved to ``rolling_back`` for a worker.
    """
    run = lock_rows(Run.objects.filter(pk=run_id)).get()
    if run_is_archived(run_id):
        raise RunError(f"run {run_id} is archived from a snapshot: it is read-only history")
    if run.status in RUN_TERMINAL and not (rollback and run.status == RunStatus.ESCALATED):
        raise RunError(f"run {run_id} already ended ({run.status}); nothing to cancel")
    reason = Redactor(run_id).text(reason.strip())  # stored on the run and in its stop reason
    text = cancel_text(username(user), reason)
    try:
        if rollback and run.status not in RUN_ACTIVE and _has_something_to_undo(run):
            return _roll_back_idle(run, user, reason, text)
        if rollback and run.status not in RUN_ACTIVE:
            text = f"{text}; nothing to roll back"
        was = run.status
        stopped = run_stop(
            run_id=run_id, reason=text, role=SUPERVISOR, by=user, rollback=rollback, why=reason
        )
        if was in (RunStatus.ESCALATED, RunStatus.AWAITING_APPROVAL):
            # Nobody decides on a cancelled run: an escalation's items, a submitter's confirmation.
            kinds: list[str] | None = (
                None if was == RunStatus.ESCALATED else [ReviewKind.CONFIRMATION.value]
            )
            _close_items(run_id, user, text, kinds=kinds)
        return stopped
    except TransitionError as exc:
        raise RunError(str(exc)) from exc


@transaction.atomic
def run_stop(
    *,
    run_id: int,
    reason: str,
    role: str,
    by: User | None = None,
    rollback: bool = False,
    why: str = "",
) -> Run:
    """End a run early: at once when nothing executes it, else ask its executor to stop.

    The one rule for every early end (an operator's cancel, a reviewer's reject or
    stop): an ended run is left as it is; an executing one gets a cancel request
    (recorded once; a later one may add the rollback) that its worker carries out;
    any other is cancelled here with its unfinished steps.
    """
    run = lock_rows(Run.objects.filter(pk=run_id)).get()
    if run.status in RUN_TERMINAL and not (rollback and run.status == RunStatus.ESCALATED):
        return run
    # Pool workers drop its steps they hold (at their next lease renewal) or have not taken.
    transaction.on_commit(lambda: remote_step_cancel(run_id=run_id))
    if run.status in RUN_ACTIVE:
        _request_cancel(run, by, rollback=rollback, reason=why)
        _stop_children(run_id, reason=reason, role=role, by=by, rollback=rollback, why=why)
        # Nobody answers a tool's question for a run that stops; its call stops waiting.
        _close_items(run_id, by, reason, kinds=[ReviewKind.ELICITATION])
        return run
    events = steps_cancel(run_id=run_id, reason=reason, role=role)
    stopped = run_transition(
        run_id=run_id,
        to=RunStatus.CANCELLED,
        reason=reason,
        role=role,
        extra_events=events,
        reopen=run.status == RunStatus.ESCALATED,
        cancel_requested_at=timezone.now(),
        cancel_requested_by=by,
        cancel_reason=why,
    )
    _stop_children(run_id, reason=reason, role=role, by=by, rollback=rollback, why=why)
    subplan_wake_parent(run_id=run_id)  # a child stopped on its own: its parent goes on
    return stopped


def _stop_children(
    run_id: int, *, reason: str, role: str, by: User | None, rollback: bool, why: str
) -> None:
    """An early end cascades to the run's child runs (subplans), and theirs, the same way."""
    text = f"parent run {run_id} stopped: {reason}"

    def stop(child_id: int) -> None:
        run_stop(run_id=child_id, reason=text, role=role, by=by, rollback=rollback, why=why)

    run_stop_children(run_id=run_id, stop=stop)


def _has_something_to_undo(run: Run) -> bool:
    """Whether a main step of the run's plan succeeded and the plan has rollback steps."""
    steps = Step.objects.filter(plan_id=run.current_plan_id or 0)
    return (
        run.current_plan_id is not None
        and steps.filter(phase=Step.Phase.MAIN, status=StepStatus.SUCCEEDED).exists()
        and steps.filter(phase=Step.Phase.ROLLBACK, status=StepStatus.PENDING).exists()
    )


def _roll_back_idle(run: Run, user: User | None, reason: str, text: str) -> Run:
    """Cancel the unfinished main steps of a run no worker holds; a worker rolls it back."""
    by = username(user)
    events = [NewEvent(SUPERVISOR, RunCancelRequested(by=by, rollback=True, reason=reason))]
    events += steps_cancel(run_id=run.pk, reason=text, role=SUPERVISOR, phase=Step.Phase.MAIN)
    rolling = run_transition(
        run_id=run.pk,
        to=RunStatus.ROLLING_BACK,
        reason=f"{text}; rolling back",
        role=SUPERVISOR,
        extra_events=events,
        reopen=run.status == RunStatus.ESCALATED,
        lease_owner="",
        lease_expires_at=None,
        cancel_requested_at=timezone.now(),
        cancel_requested_by=user,
        cancel_rollback=True,
        cancel_reason=reason,
    )
    _close_items(run.pk, user, f"{text}; rolling back")
    _stop_children(run.pk, reason=text, role=SUPERVISOR, by=user, rollback=True, why=reason)
    enqueue_resume(run.pk)
    return rolling


def _close_items(
    run_id: int, user: User | None, reason: str, *, kinds: list[str] | None = None
) -> None:
    """The run's open review items (of ``kinds``) expire: nobody decides on a run being stopped."""
    items = ReviewItem.objects.filter(run_id=run_id, status=ReviewStatus.OPEN)
    if kinds is not None:
        items = items.filter(kind__in=kinds)
    for item_id in items.values_list("pk", flat=True):
        item = locked_item(item_id)
        before = item_state(item)
        review_transition(
            item=item, to=ReviewStatus.EXPIRED, by=None, decision="run_cancelled", reason=reason
        )
        append_events(run_id, [decided_event(item, None, item.plan)])
        item_audit(
            item, "review.expired", actor=user, before=before, after=item_state(item), reason=reason
        )


def _request_cancel(run: Run, user: User | None, *, rollback: bool, reason: str) -> None:
    """Record a cancel request once (a later one may add the rollback); tell its worker after commit."""
    if run.cancel_requested_at is not None and (run.cancel_rollback or not rollback):
        return
    by = username(user)
    if run.cancel_requested_at is None:
        run.cancel_requested_at = timezone.now()
        run.cancel_requested_by = user
        run.cancel_reason = reason
    run.cancel_rollback = rollback
    run.save(
        update_fields=[
            "cancel_requested_at",
            "cancel_requested_by",
            "cancel_rollback",
            "cancel_reason",
        ]
    )
    append_events(
        run.pk,
        [
            NewEvent(
                SUPERVISOR,
                RunCancelRequested(by=by, rollback=rollback, reason=reason),
            )
        ],
    )
    transaction.on_commit(
        lambda: notify_cancel(run.pk, by, rollback=rollback, reason=run.cancel_reason)
    )
