"""Retry a run that ended on a failed step: a new run of the same task, from that step.

A run that ended ``failed`` or ``rolled_back`` is finished history: its state
machine has no way back, and its transcript says what happened. Retrying makes
a new run of the same task with the same plan, linked to the old one in both
transcripts, so the record stays honest:

1. the old run's plan is validated again (tools may have changed since);
2. if the old run was not rolled back, the steps that succeeded and do not
   depend on the failed step still stand: the new plan's copies start out
   succeeded with their results (carried over, never re-run). After a
   rollback their effects were undone, so everything runs again;
3. the new run goes through the approval policy and the queue like any new run.

Escalated runs are resumed by a reviewer through their escalation item instead
(``runs.lifecycle.escalations``): their state is kept for that decision.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db import transaction

from runs.events import RunCreated, RunRetried
from runs.lifecycle.errors import RunError
from runs.lifecycle.submit import plan_create, run_start_plan
from runs.models import Plan, Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.plan_versions import steps_carry_over
from runs.selectors import run_archive, run_is_archived
from runs.statemachine import NewEvent, append_events, lock_rows

RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.ROLLED_BACK})
SYSTEM = TranscriptEvent.Role.SYSTEM


def retryable_steps(run: Run, steps: Iterable[Step] | None = None) -> set[str]:
    """The keys of the run's failed main steps a retry may start from (empty: not retryable).

    ``steps``: the current plan's steps, when the caller loaded them already (no query).
    """
    if run.status not in RETRYABLE or run.current_plan_id is None or run_archive(run):
        return set()
    if steps is not None:
        return {
            s.key
            for s in steps
            if s.plan_id == run.current_plan_id
            and s.phase == Step.Phase.MAIN
            and s.status == StepStatus.FAILED
        }
    return set(
        Step.objects.filter(
            plan_id=run.current_plan_id, phase=Step.Phase.MAIN, status=StepStatus.FAILED
        ).values_list("key", flat=True)
    )


@transaction.atomic
def run_retry(*, run_id: int, step: str, user: User | None) -> Run:
    """A new run of ``run_id``'s task from its failed step ``step``; RunError when it cannot be."""
    # Lock the row alone (PostgreSQL refuses FOR UPDATE across the nullable plan join), then read.
    lock_rows(Run.objects.filter(pk=run_id)).values_list("pk").get()
    old = Run.objects.select_related("task", "current_plan").get(pk=run_id)
    if run_is_archived(run_id):
        raise RunError(f"run {run_id} is archived from a snapshot: it is read-only history")
    if old.status not in RETRYABLE:
        raise RunError(
            f"run {run_id} is {old.status}: only a failed or rolled-back run can be retried"
            + (
                " (an escalated run is resumed from its review item)"
                if old.status == RunStatus.ESCALATED
                else ""
            )
        )
    if step not in retryable_steps(old):
        raise RunError(f"step {step!r} is not a failed step of run {run_id}")
    plan = old.current_plan
    assert plan is not None
    by = user.get_username() if user is not None else None
    # The task, plan and results it shares hold the old run's placeholders: number on from them.
    new = Run.objects.create(task=old.task, max_parallel=old.max_parallel, redaction=old.redaction)
    append_events(new.pk, [NewEvent(SYSTEM, RunCreated(task=old.task.title, submitted_by=by))])
    copy = plan_create(
        run=new, document=plan.document, source=Plan.Source.OPERATOR, created_by=user
    )
    carried = _carry_over(old, copy) if copy.is_valid else []
    retried = RunRetried(of_run=old.pk, step=step, carried_over=carried, by=by, new_run=new.pk)
    append_events(new.pk, [NewEvent(SYSTEM, retried)])
    append_events(old.pk, [NewEvent(SYSTEM, retried)])
    run_start_plan(run=new, plan=copy, invalid="the plan is no longer valid")
    new.refresh_from_db()
    return new


def _carry_over(old: Run, copy: Plan) -> list[str]:
    """Mark the copies of steps whose effects still stand succeeded; returns their keys.

    After a rollback nothing stands. Otherwise a step stands if it succeeded in
    the old run and the steps it depends on stand too (a step downstream of a
    failure never ran, so it cannot have succeeded anyway).
    """
    if old.status == RunStatus.ROLLED_BACK or old.current_plan_id is None:
        return []
    done = Step.objects.filter(
        plan_id=old.current_plan_id, phase=Step.Phase.MAIN, status=StepStatus.SUCCEEDED
    )
    return steps_carry_over(plan=copy, finished=done)
