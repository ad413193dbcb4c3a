"""Subplan steps: a step's goal planned, approved and executed as a child run of its own.

The parent's life around a subplan step:
1. The engine reaches the step and holds it like a gate (``GATE_NEEDED``);
   ``subplan_spawn`` creates the child run (a task of its own with the step's goal,
   planner and review policy; at most the parent's budgets left; a parent link),
   queued for the same planning service every run uses.
2. When only waiting steps are left, the parent parks ``awaiting_child`` and holds
   no worker, so even a single worker can execute the child meanwhile.
3. When the child stops (any final status), ``subplan_wake_parent`` queues the
   parent again; the step takes the child's outcome (``runs.execution.children``):
   its final results, or a failure that the parent's own failure path handles.
A recovery sweep (``subplans_wake_due``) wakes parents whose wake-up was lost.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reviews.models import ApprovalPolicy
from runs.events import SubplanStarted
from runs.execution.budgets import budgets_for, budgets_left, run_usage
from runs.lifecycle.planning import run_submit_task
from runs.models import Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.planning.options import PlannerOptionsError
from runs.planning.references import ReferenceResolutionError, resolve_references
from runs.selectors import run_ancestor_ids
from runs.statemachine import LeaseLost, NewEvent, append_events, lock_rows, run_transition

R = RunStatus
SYSTEM = TranscriptEvent.Role.SYSTEM
SUPERVISOR = TranscriptEvent.Role.SUPERVISOR


@transaction.atomic
def subplan_spawn(*, run_id: int, step_id: int, fence: str | None = None) -> Run:
    """Create the child run of a subplan step (once); raises ``LeaseLost`` off the lease.

    A child that cannot start (too deep, no budget left, a goal whose references do
    not resolve, a bad planner) is created already ``failed`` with the reason, so the
    step fails the usual way and the reason shows on both runs.
    """
    parent = lock_rows(Run.objects.filter(pk=run_id)).select_related("task").get()
    if fence is not None and parent.lease_owner != fence:
        raise LeaseLost(f"run {run_id} is leased to {parent.lease_owner or 'nobody'!r} now")
    existing = Run.objects.filter(parent_step_id=step_id).order_by("-id").first()
    if existing is not None:
        return existing
    step = Step.objects.get(pk=step_id, run_id=run_id)
    params, refusal = _goal_params(step)
    goal = str(params.get("goal") or "").strip() or f"step {step.key}"
    planner = str(params.get("planner") or "")
    policy = str(params.get("policy") or "")
    depth = len(run_ancestor_ids(run_id)) + 1
    if refusal is None and depth > settings.PLANNERWEB_SUBPLAN_MAX_DEPTH:
        refusal = (
            f"a child run here would be {depth} levels deep, beyond "
            f"PLANNERWEB_SUBPLAN_MAX_DEPTH={settings.PLANNERWEB_SUBPLAN_MAX_DEPTH}"
        )
    budgets, short = _child_budgets(parent)
    refusal = refusal or short
    task = parent.task
    same_planner = not planner or planner == task.planner
    try:
        child = run_submit_task(
            title=goal,
            description="",  # the task text alone: what a playbook is matched against
            submitted_by=task.submitted_by,
            planner=planner or task.planner,
            model=task.model if same_planner else "",
            mode=task.mode,
            temperature=task.temperature,
            max_tokens=task.max_tokens,
            max_replans=task.max_replans,
            max_parallel=parent.max_parallel,
            max_steps=task.max_steps,
            budgets=budgets,
        )
    except PlannerOptionsError as exc:  # e.g. a planner this deployment has no key for
        child = run_submit_task(
            title=goal, description=f"Step {step.key} of run {run_id}", submitted_by=None
        )
        refusal = refusal or f"the subplan's planner options are invalid: {exc}"
    Run.objects.filter(pk=child.pk).update(parent_run_id=run_id, parent_step_id=step_id)
    if policy:
        ApprovalPolicy.objects.create(task_id=child.task_id, mode=policy)
    append_events(
        run_id,
        [
            NewEvent(
                SYSTEM,
                SubplanStarted(
                    step_id=step_id,
                    step=step.key,
                    child_run_id=child.pk,
                    goal=goal,
                    planner=planner,
                    policy=policy,
                ),
            )
        ],
    )
    if refusal is not None:
        run_transition(run_id=child.pk, to=R.FAILED, reason=refusal, role=SUPERVISOR)
    return child


def _goal_params(step: Step) -> tuple[dict[str, Any], str | None]:
    """The step's params with references to earlier results resolved, and why not if they fail."""
    params = step.params if isinstance(step.params, dict) else {}
    results = dict(
        Step.objects.filter(
            plan_id=step.plan_id, phase=Step.Phase.MAIN, status=StepStatus.SUCCEEDED
        ).values_list("key", "result")
    )
    try:
        resolved = resolve_references(params, results, step=step.key)
    except ReferenceResolutionError as exc:
        return params, f"the subplan's goal cannot be resolved: {exc}"
    return resolved if isinstance(resolved, dict) else params, None


def _child_budgets(parent: Run) -> tuple[dict[str, Any], str | None]:
    """The child's budget overrides (what the parent has left), or why nothing is left."""
    budgets = budgets_for(parent.task)
    if not budgets:
        return {}, None
    usage = run_usage(parent.pk, parent.started_at)
    # One step kept back: the subplan step itself starts when the child has stopped.
    left = budgets_left(budgets, usage, timezone.now(), reserve=1)
    values = {
        "budget_max_steps": left.max_steps,
        "budget_max_tokens": left.max_tokens,
        "budget_max_cost": left.max_cost,
        "budget_max_wall_seconds": left.max_wall_seconds,
    }
    spent = [name for name, value in values.items() if value is not None and not value]
    if spent:
        name = spent[0].removeprefix("budget_")
        return {}, f"the parent run's budget {name} leaves nothing for the subplan"
    return {k: v for k, v in values.items() if v is not None}, None
