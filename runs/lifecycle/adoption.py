"""Adopting a new plan version mid-run (after a failure or an iterative step), or giving up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from reviews.decisions import review_hold_plan
from runs.events import FailureReport, HandoffTaken, PlanDiff, StepStatusChanged
from runs.lifecycle.submit import plan_create
from runs.models import Plan, Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.plan_versions import steps_carry_over
from runs.planning.accounting import record_calls
from runs.planning.attempts import PlanOutcome
from runs.planning.iterative import step_event
from runs.selectors import steps_taken
from runs.statemachine import LeaseLost, NewEvent, append_events, lock_rows, run_transition

PLANNER = TranscriptEvent.Role.PLANNER
SUPERVISOR = TranscriptEvent.Role.SUPERVISOR


@dataclass(frozen=True)
class ReplanResult:
    adopted: bool  # a new plan version is current and the run is executing again
    report: str = ""  # when not adopted: why, with the partial results, for the stop reason


@transaction.atomic
def plan_adopt(
    run_id: int,
    old: Plan,
    outcome: PlanOutcome,
    old_steps: list[Step],
    fence: str | None,
    *,
    source: str = Plan.Source.REPLANNER,
    resume: bool = True,
    hold: bool = False,
) -> int | None:
    """Make the new version current, its kept steps succeeded; ``resume``: replanning → executing.

    Iterative steps after a success pass ``resume=False``: the run stayed executing.
    ``hold``: consult the approval policy first; when it holds the version, the run
    waits ``awaiting_approval`` (no lease) and its version number is returned.
    """

    run = plan_hold(run_id, fence)
    number = steps_taken(run_id) + 1  # before the new version's steps exist
    events = record_calls(run_id=run_id, calls=outcome.calls)
    append_events(run_id, events)
    plan = plan_create(
        run=run,
        document=outcome.document,
        source=source,
        parent=old,
        validated=outcome.validated,
    )
    run.llm_calls.filter(pk__in=[e.event.call_id for e in events]).update(plan=plan)  # type: ignore[attr-defined]
    # Carried over, not re-run: the new version's copies of finished steps start out
    # succeeded with the original outcome (a creation, not a transition).
    steps_carry_over(plan=plan, finished=[s for s in old_steps if s.status == StepStatus.SUCCEEDED])
    diff = plan.diff or {}
    superseded = _skip_superseded(old, f"superseded by plan v{plan.version}")
    step = [step_event(outcome, number=number, plan=plan)] if outcome.step is not None else []
    handoff = [NewEvent(PLANNER, HandoffTaken(**outcome.handoff))] if outcome.handoff else []
    append_events(
        run_id,
        [
            *superseded,
            *step,
            *handoff,
            NewEvent(
                PLANNER,
                PlanDiff(
                    plan_id=plan.pk,
                    version=plan.version,
                    parent_version=old.version,
                    **{k: diff.get(k, []) for k in ("added", "removed", "changed", "kept")},
                ),
            ),
        ],
    )
    if not resume:
        return None
    if hold and review_hold_plan(run=run, plan=plan) is not None:
        return plan.version
    run_transition(
        run_id=run_id,
        to=RunStatus.EXECUTING,
        reason=f"plan v{plan.version} from {outcome.planner} replaces v{old.version}",
        role=PLANNER,
        fence=fence,
    )
    return None


def plan_hold(run_id: int, fence: str | None) -> Run:
    """Lock the run for this transaction; ``LeaseLost`` if another worker holds it now."""
    run = lock_rows(Run.objects.filter(pk=run_id)).get()
    if fence is not None and run.lease_owner != fence:
        raise LeaseLost(f"run {run_id} is leased to {run.lease_owner or 'nobody'!r} now")
    return run


def _skip_superseded(old: Plan, reason: str) -> list[NewEvent]:
    """The old version's unstarted steps (its rollback) will never run: say so."""
    events = []
    pending = old.steps.filter(status=StepStatus.PENDING)
    for step in pending:
        events.append(
            NewEvent(
                SUPERVISOR,
                StepStatusChanged(
                    step_id=step.pk,
                    step=step.key,
                    phase=step.phase,
                    from_status=StepStatus.PENDING,
                    to_status=StepStatus.SKIPPED,
                    reason=reason,
                ),
            )
        )
    pending.update(status=StepStatus.SKIPPED, finished_at=timezone.now())
    return events


@transaction.atomic
def replan_store_failed(
    run_id: int, old: Plan, outcome: PlanOutcome, number: int, steps: list[Step], fence: str | None
) -> ReplanResult:

    plan_hold(run_id, fence)
    events = record_calls(run_id=run_id, calls=outcome.calls)
    append_events(run_id, events)
    if outcome.document is not None:
        plan_create(
            run=Run.objects.get(pk=run_id),
            document=outcome.document,
            source=Plan.Source.REPLANNER,
            parent=old,
            validated=outcome.validated,
        )
    return replan_give_up(
        run_id, f"replan {number} failed: {outcome.reason}", number - 1, steps, fence
    )


@transaction.atomic
def replan_give_up(
    run_id: int, why: str, replans: int, steps: list[Step], fence: str | None
) -> ReplanResult:
    plan_hold(run_id, fence)
    succeeded = [
        {"id": s.key, "action": s.tool_name, "result": s.result}
        for s in steps
        if s.status == StepStatus.SUCCEEDED
    ]
    failed = [
        {"id": s.key, "action": s.tool_name, "error": s.error}
        for s in steps
        if s.status == StepStatus.FAILED
    ]
    append_events(
        run_id,
        [
            NewEvent(
                SUPERVISOR,
                FailureReport(reason=why, replans=replans, succeeded=succeeded, failed=failed),
            )
        ],
    )
    partial = ", ".join(str(s["id"]) for s in succeeded) or "none"
    return ReplanResult(False, f"{why}; partial results from: {partial}")


def kept_steps(steps: list[Step]) -> list[dict[str, Any]]:
    """The succeeded steps as plan steps, for a planner to keep when it plans what is left."""
    return [
        {
            "id": s.key,
            "action": s.tool_name,
            "params": s.params,
            "depends_on": s.depends_on,
            "description": s.description,
            **({"confidence": s.confidence} if s.confidence is not None else {}),
            **({"locks": s.locks} if s.locks else {}),
        }
        for s in steps
        if s.status == StepStatus.SUCCEEDED
    ]
