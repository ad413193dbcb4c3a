"""Resuming a stopped run after a human decision: escalation actions and step gates.

A run that escalated is ``escalated`` (no worker, no lease); a run whose only
remaining steps wait at a gate is parked ``awaiting_approval`` (no worker, no
lease). A decision changes the steps it names (``runs.statemachine.step_reopen``),
reopens the run (``run_transition(reopen=True)``) and enqueues ``runs.tasks.resume_run``
after commit; a worker then continues through the executor. What each action does:

1. retry: the step goes back to ``pending`` (attempts kept), so do the steps the
   stop skipped; the run is queued. An agent step's inner call caught mid-flight
   is made again (its finished calls are replayed, not repeated).
2. skip: the step is ``skipped``; steps the stop skipped go back to ``pending``,
   except those that need the skipped step: the executor skips them (a reviewer
   who wants them run edits the plan instead).
3. edit: the reviewer's plan version becomes current; finished steps are carried
   over as succeeded (never re-run), like a replan; the run is queued.
4. write_plan: like edit, for a run that has no plan yet (its planner gave none).
5. raise_budget: the task's new limits are stored by the decision; the steps the
   breach skipped go back to ``pending`` and the run is queued.
6. rollback: a step that may have partly run is marked failed, unstarted steps
   skipped, and the run goes to ``rolling_back`` for a worker to undo.
7. abort: unfinished steps and the run end ``cancelled``.
8. an incomplete rollback: retry its failed step or mark it done by hand
   (``runs.lifecycle.rollback_review``).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from reviews.models import (
    EscalationAction,
    EscalationCause,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
)
from runs.events import StepStatusChanged
from runs.lifecycle.dispatch import enqueue_resume
from runs.lifecycle.rollback_review import RollbackRefused, rollback_resume
from runs.llmtools import calls_redo
from runs.models import Plan, Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.plan_versions import steps_carry_over
from runs.statemachine import (
    NewEvent,
    append_events,
    lock_rows,
    run_transition,
    step_reopen,
    steps_cancel,
)

R = RunStatus
S = StepStatus
REVIEWER = TranscriptEvent.Role.REVIEWER


class ResumeRefused(ValueError):
    """The action does not fit the run's state; nothing was written."""


def _main_steps(plan_id: int | None) -> list[Step]:
    if plan_id is None:
        return []
    return list(
        lock_rows(Step.objects.filter(plan_id=plan_id, phase=Step.Phase.MAIN)).order_by("position")
    )


@transaction.atomic
def run_resume(
    *,
    run_id: int,
    action: str,
    step_id: int | None,
    plan_id: int | None,
    by: Any,
    item_id: int,
    cause: str = "",
    reason: str = "",
) -> Run:
    """Carry out a reviewer's action on an escalated run and queue it (see the module docstring)."""

    run = lock_rows(Run.objects.filter(pk=run_id)).get()
    who = by.get_username() if by is not None else "the system"
    why = f"{action} decided by {who} (review {item_id})"
    if run.status != R.ESCALATED:
        raise ResumeRefused(f"run {run_id} is {run.status}, not escalated: nothing to resume")
    if action == "abort":
        return _abort(run_id, why)
    if cause == EscalationCause.ROLLBACK_INCOMPLETE or action == EscalationAction.MARK_DONE:
        return _resume_rollback(run, cause, action, step_id, why, reason)
    if action in ("edit", "write_plan"):
        adopted = _adopt_edit(run, plan_id, why)
        return _requeue(run_id, why, adopted, enqueue_resume)
    steps = _main_steps(run.current_plan_id)
    if run.current_plan_id is None or not steps:
        if action != "retry":
            raise ResumeRefused("the run has no plan to act on: edit the plan, retry or abort")
        return _requeue(run_id, f"planning again: {why}", [], enqueue_resume)  # plans again
    if any(s.status == S.ROLLED_BACK for s in steps):
        raise ResumeRefused("the run was already rolled back: abort it, or start a new run")
    target = next((s for s in steps if s.pk == step_id), None)
    events: list[NewEvent] = []
    if action == "rollback":
        for s in steps:
            if s.status == S.RUNNING:
                events.append(
                    step_reopen(step=s, to=S.FAILED, reason=why, role=REVIEWER, error=why)
                )
            elif s.status == S.PENDING:
                events.append(step_reopen(step=s, to=S.SKIPPED, reason=why, role=REVIEWER))
        append_events(run_id, events)
        return run_transition(
            run_id=run_id,
            to=R.ROLLING_BACK,
            reason=f"rolling back: {why}",
            role=REVIEWER,
            reopen=True,
            lease_owner="",
            lease_expires_at=None,
        )
    if action == "raise_budget":
        return _requeue(run_id, why, _reopen_skipped(steps, why), enqueue_resume)
    if action not in ("retry", "skip"):
        raise ResumeRefused(f"unknown action {action!r}")
    if target is None:
        failed = [s for s in steps if s.status in (S.FAILED, S.RUNNING)]
        if len(failed) != 1:
            raise ResumeRefused(f"{action} needs one step; this escalation names none")
        target = failed[0]
    if target.status not in (S.FAILED, S.RUNNING, S.PENDING):
        raise ResumeRefused(f"step {target.key} is {target.status}; nothing to {action}")
    if action == "retry":
        if target.status != S.PENDING:
            events.append(step_reopen(step=target, to=S.PENDING, reason=why, role=REVIEWER))
        events.extend(calls_redo(str(target.idempotency_key)))
    else:
        events.append(step_reopen(step=target, to=S.SKIPPED, reason=why, role=REVIEWER))
    for s in steps:  # what the stop skipped runs after all (the executor re-skips dependents)
        if s.pk != target.pk and s.status == S.SKIPPED:
            events.append(step_reopen(step=s, to=S.PENDING, reason=why, role=REVIEWER))
        elif s.pk != target.pk and s.status in (S.FAILED, S.RUNNING):
            raise ResumeRefused(
                f"step {s.key} is {s.status} too: edit the plan, roll back or abort"
            )
    return _requeue(run_id, why, events, enqueue_resume)


def _reopen_skipped(steps: list[Step], why: str) -> list[NewEvent]:
    """After a budget breach: the steps the stop skipped go back to ``pending``."""
    stuck = [s.key for s in steps if s.status in (S.FAILED, S.RUNNING)]
    if stuck:
        raise ResumeRefused(f"step {stuck[0]} did not finish: retry it, edit the plan or abort")
    return [
        step_reopen(step=s, to=S.PENDING, reason=why, role=REVIEWER)
        for s in steps
        if s.status == S.SKIPPED
    ]


def _abort(run_id: int, why: str) -> Run:
    """Unfinished steps and the run end ``cancelled``."""
    cancelled = steps_cancel(run_id=run_id, reason=why, role=REVIEWER)
    return run_transition(
        run_id=run_id,
        to=R.CANCELLED,
        reason=f"aborted: {why}",
        role=REVIEWER,
        extra_events=cancelled,
        reopen=True,
    )


def _resume_rollback(
    run: Run, cause: str, action: str, step_id: int | None, why: str, reason: str
) -> Run:
    """An incomplete rollback has actions of its own (``runs.lifecycle.rollback_review``)."""
    if cause != EscalationCause.ROLLBACK_INCOMPLETE:
        raise ResumeRefused("mark done applies to a failed rollback step only")
    try:
        return rollback_resume(run=run, action=action, step_id=step_id, why=why, reason=reason)
    except RollbackRefused as exc:
        raise ResumeRefused(str(exc)) from exc


def _requeue(run_id: int, why: str, events: list[NewEvent], enqueue: Any) -> Run:
    run = run_transition(
        run_id=run_id,
        to=R.QUEUED,
        reason=f"resumed: {why}",
        role=REVIEWER,
        extra_events=events,
        reopen=True,
        lease_owner="",
        lease_expires_at=None,
    )
    enqueue(run_id)
    return run


def _adopt_edit(run: Run, plan_id: int | None, why: str) -> list[NewEvent]:
    """Make the reviewer's version current, carrying finished steps over like a replan does."""
    plans = Plan.objects.filter(run_id=run.pk, is_valid=True)
    new = plans.filter(pk=plan_id).first() if plan_id is not None else None
    if new is None:
        raise ResumeRefused("the edited plan is not a valid version of this run")
    old_id = new.parent_id  # the version that escalated (plan_create made ``new`` current)
    events: list[NewEvent] = []
    if old_id is not None:
        finished = Step.objects.filter(plan_id=old_id, phase=Step.Phase.MAIN, status=S.SUCCEEDED)
        steps_carry_over(plan=new, finished=finished)
        stale = Step.objects.filter(plan_id=old_id, status__in=[S.PENDING, S.RUNNING])
        for step_pk, key, phase, status in stale.values_list("pk", "key", "phase", "status"):
            events.append(
                NewEvent(
                    REVIEWER,
                    StepStatusChanged(
                        step_id=step_pk,
                        step=key,
                        phase=phase,
                        from_status=status,
                        to_status=S.SKIPPED if status == S.PENDING else S.FAILED,
                        reason=f"superseded by plan v{new.version}: {why}",
                    ),
                )
            )
        now = timezone.now()
        stale.filter(status=S.PENDING).update(status=S.SKIPPED, finished_at=now)
        stale.filter(status=S.RUNNING).update(
            status=S.FAILED, finished_at=now, error=f"superseded by plan v{new.version}"
        )
    if run.current_plan_id != new.pk:
        Run.objects.filter(pk=run.pk).update(current_plan=new)
    return events


@transaction.atomic
def gate_decided(*, run_id: int, item_id: int, decision: str) -> bool:
    """A gate was decided: a run parked on it goes back to the queue; True if it was requeued.

    A run still executing reads the decision itself when it next looks (see
    ``Supervision.park``); both take the run's row lock, so the decision is never lost.
    """

    status = lock_rows(Run.objects.filter(pk=run_id)).values_list("status", flat=True).get()
    if status != R.AWAITING_APPROVAL:
        return False
    if ReviewItem.objects.filter(
        run_id=run_id, kind=ReviewKind.PLAN_APPROVAL, status=ReviewStatus.OPEN
    ).exists():
        return False  # parked for a plan approval: that decision releases the run
    run_transition(
        run_id=run_id,
        to=R.QUEUED,
        reason=f"gate decided ({decision}, review {item_id}): resuming",
        role=REVIEWER,
    )
    enqueue_resume(run_id)
    return True
