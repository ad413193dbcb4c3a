"""A reviewer's answer to an incomplete rollback (cause ``rollback_incomplete``).

The rollback ran every step it could; some failed (and those waiting for them
were skipped). The reviewer may:

1. ``retry``: the failed rollback step goes back to ``pending``, so do the steps
   skipped behind a failure; the run goes back to ``rolling_back`` for a worker.
2. ``mark_done`` (a reason is required; it goes into the item's audit entry and the
   step's event): the step is ``succeeded`` by hand, the main step it undoes
   ``rolled_back``; the rest of the rollback is resumed like a retry.
3. ``abort``: handled like any escalation's abort (the run ends ``cancelled``).

``reviews.actions`` lists what fits this cause, like every other.
"""

from __future__ import annotations

from reviews.actions import CAUSE_ACTIONS
from reviews.models import EscalationAction, EscalationCause
from runs.lifecycle.dispatch import enqueue_resume
from runs.models import Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.statemachine import NewEvent, lock_rows, run_transition, step_reopen

S = StepStatus
REVIEWER = TranscriptEvent.Role.REVIEWER

ROLLBACK_INCOMPLETE_ACTIONS = CAUSE_ACTIONS[EscalationCause.ROLLBACK_INCOMPLETE]


class RollbackRefused(ValueError):
    """The action does not fit the run's rollback; nothing was written."""


def rollback_resume(
    *, run: Run, action: str, step_id: int | None, why: str, reason: str = ""
) -> Run:
    """Retry a failed rollback step, or mark it done by hand; the rollback resumes on a worker."""
    if action not in ROLLBACK_INCOMPLETE_ACTIONS or action == EscalationAction.ABORT:
        allowed = ", ".join(ROLLBACK_INCOMPLETE_ACTIONS)
        raise RollbackRefused(f"an incomplete rollback takes one of: {allowed}; not {action!r}")
    steps = list(
        lock_rows(Step.objects.filter(plan_id=run.current_plan_id or 0)).order_by("position")
    )
    rollback = [s for s in steps if s.phase == Step.Phase.ROLLBACK]
    failed = [s for s in rollback if s.status == S.FAILED]
    target = next((s for s in failed if s.pk == step_id), None) or (
        failed[0] if len(failed) == 1 else None
    )
    if target is None:
        named = next((s for s in rollback if s.pk == step_id), None)
        if named is not None:
            raise RollbackRefused(f"rollback step {named.key} is {named.status}, not failed")
        raise RollbackRefused("name the failed rollback step to act on")
    events: list[NewEvent] = []
    if action == EscalationAction.RETRY:
        events.append(step_reopen(step=target, to=S.PENDING, reason=why, role=REVIEWER))
    else:
        if not reason.strip():
            raise RollbackRefused(
                "say why the rollback step counts as done (what was done by hand)"
            )
        done = f"marked done by hand: {why}: {reason.strip()}"
        events.append(step_reopen(step=target, to=S.SUCCEEDED, reason=done, role=REVIEWER))
        main = {s.key: s for s in steps if s.phase == Step.Phase.MAIN}
        undone = main.get(target.undoes) if target.undoes else None
        if undone is not None and undone.status == S.SUCCEEDED:
            reason_undone = f"undone by {target.key} ({done})"
            events.append(
                step_reopen(step=undone, to=S.ROLLED_BACK, reason=reason_undone, role=REVIEWER)
            )
    events += _unblock(steps, target)
    resumed = run_transition(
        run_id=run.pk,
        to=RunStatus.ROLLING_BACK,
        reason=f"rollback resumed: {why}",
        role=REVIEWER,
        extra_events=events,
        reopen=True,
        lease_owner="",
        lease_expires_at=None,
    )
    enqueue_resume(run.pk)
    return resumed


def _unblock(steps: list[Step], target: Step) -> list[NewEvent]:
    """Rollback steps skipped behind a failure (their main step still needs undoing) run again."""
    main = {s.key: s.status for s in steps if s.phase == Step.Phase.MAIN}
    events = []
    for s in steps:
        if s.phase != Step.Phase.ROLLBACK or s.pk == target.pk or s.status != S.SKIPPED:
            continue
        if s.undoes and main.get(s.undoes) == S.SUCCEEDED:
            events.append(
                step_reopen(
                    step=s, to=S.PENDING, reason=f"resumed with {target.key}", role=REVIEWER
                )
            )
    return events
