"""Ending a run early: an operator's cancel, or a decision that stops it."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from runs.events import RunCancelRequested
from runs.execution.engine import notify_cancel
from runs.lifecycle.errors import RunError
from runs.models import Run, RunStatus, TranscriptEvent
from runs.permissions import username
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


@transaction.atomic
def run_cancel(*, run_id: int, user: User | None) -> Run:
    """Cancel a run: at once when nothing executes it, else ask its executor to stop.

    An executing run's worker sees the request (at once in this process, within
    a heartbeat elsewhere), kills running steps and ends the run ``cancelled``.
    """
    run = lock_rows(Run.objects.filter(pk=run_id)).get()
    if run.status in RUN_TERMINAL:
        raise RunError(f"run {run_id} already ended ({run.status}); nothing to cancel")
    by = username(user)
    reason = f"cancelled by {by}" if by else "cancelled"
    if run.status in RUN_ACTIVE:
        if run.cancel_requested_at is None:
            run.cancel_requested_at = timezone.now()
            run.cancel_requested_by = user
            run.save(update_fields=["cancel_requested_at", "cancel_requested_by"])
            append_events(
                run_id, [NewEvent(TranscriptEvent.Role.SUPERVISOR, RunCancelRequested(by=by))]
            )

            transaction.on_commit(lambda: notify_cancel(run_id, by))
        return run
    events = steps_cancel(run_id=run_id, reason=reason, role=TranscriptEvent.Role.SUPERVISOR)
    try:
        return run_transition(
            run_id=run_id,
            to=RunStatus.CANCELLED,
            reason=reason,
            role=TranscriptEvent.Role.SUPERVISOR,
            extra_events=events,
            cancel_requested_at=timezone.now(),
            cancel_requested_by=user,
        )
    except TransitionError as exc:
        raise RunError(str(exc)) from exc


def run_stop(*, run_id: int, reason: str, role: str, by: User | None = None) -> None:
    """End a run a decision stopped: at once when nothing executes it, else via a cancel request."""

    status = lock_rows(Run.objects.filter(pk=run_id)).values_list("status", flat=True).get()
    if status in RUN_TERMINAL:
        return
    if status in RUN_ACTIVE:
        run_cancel(run_id=run_id, user=by)
        return
    events = steps_cancel(run_id=run_id, reason=reason, role=role)
    run_transition(
        run_id=run_id,
        to=RunStatus.CANCELLED,
        reason=reason,
        role=role,
        extra_events=events,
        cancel_requested_at=timezone.now(),
        cancel_requested_by=by,
    )
