"""The rollback phase: after a failure, the plan's rollback steps run in order, one at a time."""

from __future__ import annotations

import asyncio

from reviews.models import EscalationCause
from runs.execution.commit_policy import commit_starting
from runs.execution.journal import Batch
from runs.execution.ports import SupervisionPort
from runs.execution.run_state import RunState
from runs.execution.runner import StepRunner
from runs.execution.steps import Outcome, S, StepState, finish, transition
from runs.execution.writes import Committer
from runs.models import RunStatus

R = RunStatus


class Rollback:
    """Undoes a failed run: it ends ``rolled_back``, ``failed`` (a rollback step failed) or escalated."""

    def __init__(
        self,
        run: RunState,
        committer: Committer,
        runner: StepRunner,
        supervision: SupervisionPort,
        cancel: asyncio.Event,
    ) -> None:
        self.run = run
        self.committer = committer
        self.runner = runner
        self.supervision = supervision
        self.cancel = cancel

    async def execute(self, failure: str, *, escalate: str | None = None) -> None:
        """Run the rollback steps in order; the run ends rolled back, or escalated with ``escalate``."""
        run = self.run
        for state in run.rollback:
            if state.status == S.SUCCEEDED:
                continue
            if self.cancel.is_set():
                await self.committer.cancel_all({}, Batch(run.run_id))
                return
            if state.status == S.RUNNING and not (state.tool and state.tool.repeatable):
                await self.supervision.escalate(
                    run,
                    EscalationCause.PARTIAL_RUN,
                    f"rollback step {state.key} may have partly run: its worker stopped "
                    "while it was running and its tool is neither idempotent nor honours "
                    "idempotency keys",
                    step=state,
                )
                return
            outcome = await self._run_one(state)
            if outcome is None:
                return  # cancelled
            batch = Batch(run.run_id)
            finish(batch, state, outcome)
            if outcome.ok:
                await self.committer.commit(batch)
                continue
            for later in run.rollback:
                if later.status == S.PENDING:
                    transition(batch, later, S.SKIPPED, reason=f"rollback stopped at {state.key}")
            await self.committer.commit(batch)
            await self.committer.set_run(
                R.FAILED,
                f"{failure}; rollback step {state.key} ({state.tool_name}) failed: {outcome.error}",
            )
            return
        await self._undone(failure, escalate)

    async def _run_one(self, state: StepState) -> Outcome | None:
        """Start one rollback step (write-ahead) and wait for it; None when the run was cancelled."""
        batch = Batch(self.run.run_id)
        if state.status == S.PENDING:
            transition(batch, state, S.RUNNING)
        run_step = self.runner.run_step
        (task,) = await commit_starting(
            self.committer,
            batch,
            [(state, state.params)],
            lambda group: [asyncio.create_task(run_step(s, p)) for s, p in group],
        )
        cancel_wait = asyncio.create_task(self.cancel.wait())
        done, _ = await asyncio.wait({task, cancel_wait}, return_when=asyncio.FIRST_COMPLETED)
        cancel_wait.cancel()
        if task not in done:
            await self.committer.cancel_all({state.key: task}, Batch(self.run.run_id))
            return None
        return task.result()

    async def _undone(self, failure: str, escalate: str | None) -> None:
        """Every rollback step succeeded: the main steps that succeeded are now rolled back."""
        run = self.run
        batch = Batch(run.run_id)
        for s in run.main:
            if s.status == S.SUCCEEDED:
                transition(batch, s, S.ROLLED_BACK, reason="undone by the plan's rollback")
        await self.committer.commit(batch)
        reason = f"{failure}; rolled back ({len(run.rollback)} rollback step(s) ran)"
        if escalate:
            await self.supervision.escalate(run, escalate, reason)
        else:
            await self.committer.set_run(R.ROLLED_BACK, reason)
