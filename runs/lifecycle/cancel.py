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
    """An operator's cancel: refused once the run ended, else ``run_stop`` with their name.

    An executing run's worker sees the request (at once in this process, within
    a heartbeat elsewhere), kills running steps and ends the run ``cancelled``.
    """
    run = lock_rows(Run.objects.filter(pk=run_id)).get()
    if run.status in RUN_TERMINAL:
        raise RunError(f"run {run_id} already ended ({run.status}); nothing to cancel")
    by = username(user)
    try:
        return run_stop(
            run_id=run_id,
            reason=f"cancelled by {by}" if by else "cancelled",
            role=TranscriptEvent.Role.SUPERVISOR,
            by=user,
        )
    except TransitionError as exc:
        raise RunError(str(exc)) from exc


@transaction.atomic
def run_stop(*, run_id: int, reason: str, role: str, by: User | None = None) -> Run:
    """End a run early: at once when nothing executes it, else ask its executor to stop.

    The one rule for every early end (an operator's cancel, a reviewer's reject or
    stop): an ended run is left as it is; an executing one gets a cancel request
    (recorded once) that its worker carries out; any other is cancelled here with
    its unfinished steps.
    """
    run = lock_rows(Run.objects.filter(pk=run_id)).get()
    if run.status in RUN_TERMINAL:
        return run
    if run.status in RUN_ACTIVE:
        _request_cancel(run, by)
        return run
    events = steps_cancel(run_id=run_id, reason=reason, role=role)
    return run_transition(
        run_id=run_id,
        to=RunStatus.CANCELLED,
        reason=reason,
        role=role,
        extra_events=events,
        cancel_requested_at=timezone.now(),
        cancel_requested_by=by,
    )


def _request_cancel(run: Run, user: User | None) -> None:
    """Record a cancel request once; its worker is told after the commit."""
    if run.cancel_requested_at is not None:
        return
    by = username(user)
    run.cancel_requested_at = timezone.now()
    run.cancel_requested_by = user
    run.save(update_fields=["cancel_requested_at", "cancel_requested_by"])
    append_events(run.pk, [NewEvent(TranscriptEvent.Role.SUPERVISOR, RunCancelRequested(by=by))])
    transaction.on_commit(lambda: notify_cancel(run.pk, by))
