"""A subplan step's outcome, taken from its child run once that run stopped."""

from __future__ import annotations

from runs.execution.steps import Outcome, to_json
from runs.models import Run, RunStatus, Step, StepStatus
from runs.statemachine import RUN_TERMINAL


def child_outcome(step_id: int) -> Outcome:
    """The step's result from its latest child run: its final results when it succeeded.

    Any other end (failed, escalated, rolled back, cancelled) fails the step, so
    the parent's own failure path (replan, rollback, escalation) follows.
    """
    child = (
        Run.objects.filter(parent_step_id=step_id)
        .order_by("-id")
        .values("pk", "status", "stop_reason")
        .first()
    )
    if child is None:
        return Outcome(False, error="the subplan has no child run")
    if child["status"] not in RUN_TERMINAL:
        return Outcome(False, error=f"child run {child['pk']} has not finished")
    summary = {"child_run": child["pk"], "status": child["status"]}
    if child["status"] != RunStatus.SUCCEEDED:
        why = child["stop_reason"] or child["status"]
        return Outcome(
            False, result=summary, error=f"child run {child['pk']} ended {child['status']}: {why}"
        )
    plan_id = Run.objects.filter(pk=child["pk"]).values_list("current_plan_id", flat=True).get()
    results = {
        key: result
        for key, result in Step.objects.filter(
            plan_id=plan_id, phase=Step.Phase.MAIN, status=StepStatus.SUCCEEDED
        )
        .order_by("position")
        .values_list("key", "result")
    }
    result = {**summary, "results": results}
    return Outcome(True, result=result, result_json=to_json(result))
