"""Links between a parent run and its child runs: waiting, waking up, stopping together.

Kept apart from the spawning (``runs.lifecycle.subplans``) so that the cancel
service, which the planning services use, can cascade without importing them.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from runs.events import SubplanFinished
from runs.execution.ports import GATE_CHILD, GATE_NEEDED
from runs.lifecycle.dispatch import enqueue_run
from runs.models import Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.planning.subplans import SUBPLAN
from runs.statemachine import RUN_TERMINAL, NewEvent, lock_rows, run_transition, step_reopen

R = RunStatus
SYSTEM = TranscriptEvent.Role.SYSTEM
_SWEEP = 200


def _latest_children(step_ids: list[int]) -> dict[int, tuple[int, str]]:
    """Step id → (its latest child run's id, that run's status)."""
    latest: dict[int, tuple[int, str]] = {}
    rows = Run.objects.filter(parent_step_id__in=step_ids).order_by("id")
    for run_id, step_id, status in rows.values_list("pk", "parent_step_id", "status"):
        latest[step_id] = (run_id, status)
    return latest


def subplan_gate(step_id: int) -> str | None:
    """A pending subplan step's gate: no child yet, child under way, or None (it stopped)."""
    child = _latest_children([step_id]).get(step_id)
    if child is None:
        return GATE_NEEDED
    return None if child[1] in RUN_TERMINAL else GATE_CHILD


def subplans_done(step_ids: list[int]) -> list[int]:
    """The subplan steps among ``step_ids`` whose child run has stopped."""
    return [s for s, (_, status) in _latest_children(step_ids).items() if status in RUN_TERMINAL]


def subplan_after_stop(*, run_id: int) -> None:
    """A run stopped: wake its waiting parent; a rolled-back run rolls back its succeeded children."""
    row = _run_links(run_id)
    if row is None:
        return
    _wake_parent(run_id, row)
    if row["status"] == R.ROLLED_BACK:
        run_roll_back_children(run_id=run_id)


def _run_links(run_id: int) -> dict[str, Any] | None:
    """What a stopped run's parent needs to hear of it (one query); None for no such run."""
    row = (
        Run.objects.filter(pk=run_id)
        .values("parent_run_id", "parent_step_id", "status", "stop_reason")
        .first()
    )
    return dict(row) if row is not None else None


def run_roll_back_children(*, run_id: int) -> list[int]:
    """Reopen the run's succeeded child runs to roll back (their own rollback steps run).

    Each child is queued ``rolling_back`` for a worker; once it ends ``rolled_back`` its
    own succeeded children follow the same way (``subplan_after_stop``).
    """
    reopened = []
    for child_id in Run.objects.filter(parent_run_id=run_id, status=R.SUCCEEDED).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            child = lock_rows(Run.objects.filter(pk=child_id)).get()
            if child.status != R.SUCCEEDED:
                continue
            # Its rollback steps were skipped as "not needed" when it succeeded: now they are.
            skipped = Step.objects.filter(
                plan_id=child.current_plan_id or 0,
                phase=Step.Phase.ROLLBACK,
                status=StepStatus.SKIPPED,
            )
            events = [
                step_reopen(
                    step=step,
                    to=StepStatus.PENDING,
                    reason=f"parent run {run_id} rolled back",
                    role=SYSTEM,
                )
                for step in lock_rows(skipped)
            ]
            run_transition(
                run_id=child_id,
                to=R.ROLLING_BACK,
                reason=f"parent run {run_id} rolled back",
                role=SYSTEM,
                extra_events=events,
                reopen=True,
                lease_owner="",
                lease_expires_at=None,
            )
            enqueue_run(child_id)
        reopened.append(child_id)
    return reopened


def subplan_wake_parent(*, run_id: int) -> bool:
    """A run stopped: when it is a child its parent waits for, queue the parent again.

    Safe to call for any run, any number of times: only a stopped child of a parent
    ``awaiting_child`` changes anything, under the parent's row lock (the same lock
    the parent takes to park, so the wake-up is never lost between the two).
    """
    row = _run_links(run_id)
    return row is not None and _wake_parent(run_id, row)


def _wake_parent(run_id: int, row: dict[str, Any]) -> bool:
    """``subplan_wake_parent`` for the run's row (``_run_links``)."""
    if row["parent_run_id"] is None or row["status"] not in RUN_TERMINAL:
        return False
    parent_id = row["parent_run_id"]
    with transaction.atomic():
        status = (
            lock_rows(Run.objects.filter(pk=parent_id)).values_list("status", flat=True).first()
        )
        if status != R.AWAITING_CHILD:
            return False
        key = Step.objects.filter(pk=row["parent_step_id"] or 0).values_list("key", flat=True)
        step = key.first() or SUBPLAN
        finished = SubplanFinished(
            step=step, child_run_id=run_id, status=row["status"], reason=row["stop_reason"]
        )
        run_transition(
            run_id=parent_id,
            to=R.QUEUED,
            reason=f"child run {run_id} of step {step} {row['status']}",
            role=SYSTEM,
            extra_events=[NewEvent(SYSTEM, finished)],
        )
        enqueue_run(parent_id)
    return True


def subplans_wake_due() -> list[int]:
    """Recovery: parents ``awaiting_child`` whose child has stopped (a lost wake-up); queued again."""
    woken = []
    waiting = Run.objects.filter(status=R.AWAITING_CHILD).values_list("pk", "current_plan_id")
    for parent_id, plan_id in waiting[:_SWEEP]:
        steps = list(
            Step.objects.filter(
                plan_id=plan_id, phase=Step.Phase.MAIN, status=StepStatus.PENDING, tool__isnull=True
            ).values_list("pk", flat=True)
        )
        children = _latest_children(steps)
        for run_id, status in children.values():
            if status in RUN_TERMINAL and subplan_wake_parent(run_id=run_id):
                woken.append(parent_id)
                break
    return woken


def run_stop_children(*, run_id: int, stop: Any) -> None:
    """Cascade an early end to the run's child runs still going (``stop`` ends one run).

    ``stop(child_id)`` is the caller's own stop rule (``runs.lifecycle.cancel.run_stop``),
    which calls back here for the child's children.
    """
    going = Run.objects.filter(parent_run_id=run_id).exclude(status__in=RUN_TERMINAL)
    for child_id in going.values_list("pk", flat=True):
        stop(child_id)
