"""Replanning: after a step fails for good, a new plan version for the remaining work.

Called by the executor (``RunExecutor._replan``, in a worker thread, never on the
event loop) with the run ``executing`` and its failed plan's steps settled:
1. Only planner tasks replan (a hand-written plan is the operator's; it rolls
   back as written), and at most ``task.max_replans`` times.
2. ``executing → replanning``; the model gets the finished steps with results,
   the failed step with its error and the steps that never ran.
3. The new version keeps the finished steps (stored ``succeeded`` with their
   results, never re-run), records its parent and a diff (added, removed,
   changed, kept), and the run goes back to ``executing``.
4. Otherwise the run stays where it is (``executing`` or ``replanning``) for the
   executor to roll back; a ``run.failure_report`` lists the partial results.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from runs.events import FailureReport, PlanDiff, StepStatusChanged
from runs.models import Plan, Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.plan_versions import steps_carry_over
from runs.planning.options import task_options
from runs.planning.planner import PlanOutcome, check_plan, plan_task
from runs.planning.prompt import ReplanContext, context_for
from runs.statemachine import LeaseLost, NewEvent, append_events, lock_rows, run_transition
from runs.tools.registry import load_tool_specs

log = logging.getLogger(__name__)
PLANNER = TranscriptEvent.Role.PLANNER
SUPERVISOR = TranscriptEvent.Role.SUPERVISOR


@dataclass(frozen=True)
class ReplanResult:
    adopted: bool  # a new plan version is current and the run is executing again
    report: str = ""  # when not adopted: why, with the partial results, for the stop reason


def replan_after_failure(*, run_id: int, failure: str, fence: str | None = None) -> ReplanResult:
    """Try to replace the run's failed plan (see the module docstring); never raises.

    ``fence`` is the executor's lease token: every write checks the run still
    carries it (a worker that lost the run must not replan it).
    """
    try:
        return _replan(run_id, failure, fence)
    except Exception as exc:  # the executor must still be able to roll back
        log.exception("replanning run %s failed", run_id)
        return ReplanResult(False, f"replanning failed: {exc}")


def _replan(run_id: int, failure: str, fence: str | None) -> ReplanResult:
    run = Run.objects.select_related("task", "current_plan").get(pk=run_id)
    task = run.task
    if not task.planner or task.planner == "manual":
        return ReplanResult(False)  # a hand-written plan: roll back as today, no report
    from runs.planning.iterative import next_step_after_failure, task_is_iterative

    if task_is_iterative(task):  # the model picks the next step knowing the error
        return next_step_after_failure(run_id=run_id, failure=failure, fence=fence)
    options = task_options(task)
    old = run.current_plan
    assert old is not None
    used = run.plans.filter(source=Plan.Source.REPLANNER).count()
    steps = list(old.steps.filter(phase=Step.Phase.MAIN).order_by("position"))
    if used >= options.max_replans:
        return _give_up(
            run_id, f"replans exhausted ({used} of {options.max_replans})", used, steps, fence
        )
    context = ReplanContext(
        finished=[
            {"id": s.key, "action": s.tool_name, "params": s.params, "result": s.result}
            for s in steps
            if s.status == StepStatus.SUCCEEDED
        ],
        failed=[
            {"id": s.key, "action": s.tool_name, "params": s.params, "error": s.error}
            for s in steps
            if s.status == StepStatus.FAILED
        ],
        remaining=[
            {"id": s.key, "action": s.tool_name, "params": s.params}
            for s in steps
            if s.status not in (StepStatus.SUCCEEDED, StepStatus.FAILED)
        ],
        replan_number=used + 1,
    )
    kept = [
        {
            "id": s.key,
            "action": s.tool_name,
            "params": s.params,
            "depends_on": s.depends_on,
            "description": s.description,
            **({"confidence": s.confidence} if s.confidence is not None else {}),
        }
        for s in steps
        if s.status == StepStatus.SUCCEEDED
    ]
    if run.status != RunStatus.REPLANNING:  # else: taking over a replan whose worker died
        run_transition(
            run_id=run_id,
            to=RunStatus.REPLANNING,
            reason=f"replan {used + 1} of {options.max_replans} after: {failure}",
            role=PLANNER,
            fence=fence,
        )
    outcome = plan_task(
        context_for(
            task=task.title,
            description=task.description,
            mode="upfront",
            max_parallel=run.max_parallel,
            max_replans=options.max_replans,
            replan=context,
        ),
        options,
        purpose="replan",
        kept=kept,
    )
    if outcome.ok and old.rollback and not (outcome.document or {}).get("rollback"):
        # A new plan without undo actions keeps the old ones: the finished work still needs them.
        outcome.document = {**outcome.document, "rollback": old.rollback}
        outcome.validated = check_plan(outcome.document, tools=load_tool_specs(), mode="upfront")
        outcome.ok = outcome.validated.is_valid
    if outcome.ok:
        _adopt(run_id, old, outcome, steps, fence)
        return ReplanResult(True)
    return _store_failed_replan(run_id, old, outcome, used + 1, steps, fence)


@transaction.atomic
def _adopt(
    run_id: int,
    old: Plan,
    outcome: PlanOutcome,
    old_steps: list[Step],
    fence: str | None,
    *,
    source: str = Plan.Source.REPLANNER,
    resume: bool = True,
) -> None:
    """Make the new version current, its kept steps succeeded; ``resume``: replanning → executing.

    Iterative steps after a success pass ``resume=False``: the run stayed executing.
    """
    from runs.planning.accounting import record_calls
    from runs.planning.iterative import step_event, steps_taken
    from runs.services import plan_create

    run = _hold(run_id, fence)
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
    diff = plan_diff(old_steps, list(plan.steps.filter(phase=Step.Phase.MAIN)))
    plan.diff = diff
    plan.save(update_fields=["diff"])
    superseded = _skip_superseded(old, f"superseded by plan v{plan.version}")
    step = [step_event(outcome, number=number, plan=plan)] if outcome.step is not None else []
    append_events(
        run_id,
        [
            *superseded,
            *step,
            NewEvent(
                PLANNER,
                PlanDiff(plan_id=plan.pk, version=plan.version, parent_version=old.version, **diff),
            ),
        ],
    )
    if not resume:
        return
    run_transition(
        run_id=run_id,
        to=RunStatus.EXECUTING,
        reason=f"plan v{plan.version} from {outcome.planner} replaces v{old.version}",
        role=PLANNER,
        fence=fence,
    )


def _hold(run_id: int, fence: str | None) -> Run:
    """Lock the run for this transaction; ``LeaseLost`` if another worker holds it now."""
    run = lock_rows(Run.objects.filter(pk=run_id)).get()
    if fence is not None and run.lease_owner != fence:
        raise LeaseLost(f"run {run_id} is leased to {run.lease_owner or 'nobody'!r} now")
    return run


def plan_diff(old: list[Any], new: list[Any]) -> dict[str, Any]:
    """Steps added, removed, changed (the fields that differ, before and after) and kept, by id."""
    before = {s.key: s for s in old}
    after = {s.key: s for s in new}
    changed = []
    kept = []
    for key in after.keys() & before.keys():
        differ = [
            (f, a, b)
            for f, a, b in (
                ("action", before[key].tool_name, after[key].tool_name),
                ("params", before[key].params, after[key].params),
                ("depends_on", list(before[key].depends_on), list(after[key].depends_on)),
            )
            if a != b
        ]
        if differ:
            changed.append(
                {
                    "id": key,
                    "fields": [f for f, _, _ in differ],
                    "values": {f: {"from": a, "to": b} for f, a, b in differ},
                }
            )
        else:
            kept.append(key)
    order = {s.key: i for i, s in enumerate(new)}
    return {
        "added": [s.key for s in new if s.key not in before],
        "removed": [s.key for s in old if s.key not in after],
        "changed": sorted(changed, key=lambda c: order[c["id"]]),
        "kept": sorted(kept, key=order.__getitem__),
    }


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
def _store_failed_replan(
    run_id: int, old: Plan, outcome: PlanOutcome, number: int, steps: list[Step], fence: str | None
) -> ReplanResult:
    from runs.planning.accounting import record_calls
    from runs.services import plan_create

    _hold(run_id, fence)
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
    return _give_up(run_id, f"replan {number} failed: {outcome.reason}", number - 1, steps, fence)


@transaction.atomic
def _give_up(
    run_id: int, why: str, replans: int, steps: list[Step], fence: str | None
) -> ReplanResult:
    _hold(run_id, fence)
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
    partial = ", ".join(s["id"] for s in succeeded) or "none"
    return ReplanResult(False, f"{why}; partial results from: {partial}")
