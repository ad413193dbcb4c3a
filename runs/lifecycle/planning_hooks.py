"""The planner's two hooks for the engine: replanning after a failure, an iterative task's next step.

Implements ``runs.execution.ports.PlanningPort``. The engine calls ``replan`` and
``next_step`` in a helper thread with its own database connections (both call a
model), passing its lease (``fence``) so a worker that lost the run cannot plan for it.
"""

from __future__ import annotations

from runs.lifecycle.iterative import next_step_after_success
from runs.lifecycle.replan import replan_after_failure
from runs.models import Task
from runs.planning.iterative import task_is_iterative


class PlanningHooks:
    """Replanning (``runs.planning.replan``) and iterative next steps (``runs.planning.iterative``)."""

    def is_iterative(self, task: Task) -> bool:
        """Whether the task's planner picks its steps one at a time."""

        return task_is_iterative(task)

    def replan(self, *, run_id: int, failure: str, fence: str | None) -> tuple[bool, str]:
        """A new plan version after ``failure``: (adopted, the replanner's report when not)."""

        result = replan_after_failure(run_id=run_id, failure=failure, fence=fence)
        return result.adopted, result.report

    def next_step(self, *, run_id: int, fence: str | None) -> tuple[str, str]:
        """The iterative planner's next move: (continue | finish | fail | lost | ask, reason)."""

        result = next_step_after_success(run_id=run_id, fence=fence)
        return result.action, result.reason
