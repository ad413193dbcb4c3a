"""The executor's two planner hooks: replanning after a failure, the next step of an iterative task.

A mixin of ``runs.execution.engine.RunExecutor``. Both call a model, so both
run in a helper thread with its own database connections, passing the
executor's lease (``fence``) so a worker that lost the run cannot plan for it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from runs.execution.journal import StaleStateError
from runs.models import Run


class PlanningHooks:
    """Replanning and iterative next steps for ``RunExecutor``."""

    # Provided by RunExecutor (as is ``load``, which reloads the run after a new version).
    run_id: int
    fence: str | None
    status: str

    async def _replan(self, failure: str) -> tuple[bool, str]:
        """Ask ``runs.planning.replan`` for a new plan version, in a thread (it calls a model).

        Adopted: the run is ``executing`` a new version whose finished steps are
        already succeeded; reload and go on. Not adopted: the failure reason gains
        the replanner's report and the rollback follows as before.
        """
        from django.db import connections

        from runs.lifecycle.replan import replan_after_failure

        def work() -> Any:
            try:
                result = replan_after_failure(run_id=self.run_id, failure=failure, fence=self.fence)
                if result.adopted:
                    self.load()
                else:
                    self.status = Run.objects.values_list("status", flat=True).get(pk=self.run_id)
                return result
            finally:
                connections.close_all()  # this helper thread's own connections

        result = await asyncio.to_thread(work)
        if result.adopted:
            return True, failure
        return False, f"{failure}; {result.report}" if result.report else failure

    async def _next_step(self) -> tuple[bool, str | None]:
        """Iterative tasks: ask ``runs.planning.iterative`` for the next step, in a thread.

        (True, None): a new plan version with one more pending step is current
        (reloaded); run it. (False, None): the planner said stop; the run
        succeeds. (False, reason): no next step; the run fails with the reason.
        """
        from django.db import connections

        from runs.lifecycle.iterative import next_step_after_success

        def work() -> Any:
            try:
                result = next_step_after_success(run_id=self.run_id, fence=self.fence)
                if result.action == "continue":
                    self.load()
                return result
            finally:
                connections.close_all()  # this helper thread's own connections

        result = await asyncio.to_thread(work)
        if result.action == "lost":
            raise StaleStateError(result.reason)
        if result.action == "continue":
            return True, None
        return False, result.reason if result.action == "fail" else None
