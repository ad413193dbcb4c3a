"""Replanning: after a step fails for good, a new plan version for the remaining work.

Called by the executor (``RunExecutor._replan``, in a worker thread, never on the
event loop) with the run ``executing`` and its failed plan's steps settled:
1. Planner tasks replan, and hand-written plans that name a planner (one that
   names none rolls back as written); at most ``task.max_replans`` times.
2. ``executing → replanning``; the model gets the finished steps with results,
   the failed step with its error and the steps that never ran.
3. The new version keeps the finished steps (stored ``succeeded`` with their
   results, never re-run), records its parent and a diff (added, removed,
   changed, kept), and the run goes back to ``executing``; or, for a
   hand-written plan the approval policy holds, waits ``awaiting_approval``.
4. Otherwise the run stays where it is (``executing`` or ``replanning``) for the
   executor to roll back; a ``run.failure_report`` lists the partial results.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import F

from runs.lifecycle.adoption import (
    ReplanResult,
    kept_steps,
    plan_adopt,
    replan_give_up,
    replan_store_failed,
)
from runs.lifecycle.iterative import next_step_after_failure
from runs.models import Plan, Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.planning.attempts import check_plan
from runs.planning.iterative import task_is_iterative
from runs.planning.options import task_options
from runs.planning.planner import plan_task
from runs.planning.prompt import ReplanContext, context_for
from runs.statemachine import run_transition
from runs.tools.registry import load_tool_specs

log = logging.getLogger(__name__)
PLANNER = TranscriptEvent.Role.PLANNER
SUPERVISOR = TranscriptEvent.Role.SUPERVISOR


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


def _replan_attempt(run_id: int, attempts: int) -> bool:
    """Count one more attempt at a replan; False past ``PLANNERWEB_MAX_PLANNING_ATTEMPTS``."""
    if attempts >= settings.PLANNERWEB_MAX_PLANNING_ATTEMPTS:
        return False
    Run.objects.filter(pk=run_id).update(planning_attempts=F("planning_attempts") + 1)
    return True


def _replan(run_id: int, failure: str, fence: str | None) -> ReplanResult:
    run = Run.objects.select_related("task", "current_plan").get(pk=run_id)
    task = run.task
    if not task.planner or task.planner == "manual":
        return ReplanResult(False)  # a hand-written plan without a replanner: roll back

    if task_is_iterative(task):  # the model picks the next step knowing the error
        return next_step_after_failure(run_id=run_id, failure=failure, fence=fence)
    options = task_options(task)
    old = run.current_plan
    assert old is not None
    used = run.plans.filter(source=Plan.Source.REPLANNER).count()
    steps = list(old.steps.filter(phase=Step.Phase.MAIN).order_by("position"))
    if used >= options.max_replans:
        return replan_give_up(
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
        plan=old.document,
    )
    kept = kept_steps(steps)
    if run.status != RunStatus.REPLANNING:
        run_transition(
            run_id=run_id,
            to=RunStatus.REPLANNING,
            reason=f"replan {used + 1} of {options.max_replans} after: {failure}",
            role=PLANNER,
            fence=fence,
            planning_attempts=1,
        )
    elif not _replan_attempt(run_id, run.planning_attempts):
        # Taking over a replan whose worker died, too often: give up instead of looping.
        why = f"replan {used + 1} was attempted {run.planning_attempts} times and never finished"
        return replan_give_up(run_id, why, used, steps, fence)
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
        # A hand-written plan passed the approval policy; its replacement must too.
        hand_written = run.plans.filter(version=1, source=Plan.Source.OPERATOR).exists()
        held = plan_adopt(run_id, old, outcome, steps, fence, hold=hand_written)
        if held:
            return ReplanResult(False, f"plan v{held} waits for a reviewer's approval")
        return ReplanResult(True)
    return replan_store_failed(run_id, old, outcome, used + 1, steps, fence)
