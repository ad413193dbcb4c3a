"""The executor's commits: one transaction at a time on the run's journal, and run-level changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from runs.events import RunStatusChanged
from runs.execution.journal import Batch, Journal, RunWrite
from runs.execution.run_state import RunState
from runs.execution.steps import EXECUTOR, SUPERVISOR, S, transition
from runs.models import RunStatus

R = RunStatus


class Committer:
    """Commits a run's batches one at a time (``Journal.commit_async``: inline, or hosted in a writer thread).

    Alone on its loop, an executor commits inline: measured, committing beside the
    loop while siblings run was no faster on the target machine (GIL contention
    ate the overlap). Hosted beside other runs, its commits go to the host's
    writer threads, so that one run's commit never stalls another run's steps.
    """

    def __init__(self, run: RunState, journal: Journal) -> None:
        self.run = run
        self.journal = journal
        # Retries commit from step tasks: one transaction at a time.
        self.lock = asyncio.Lock()
        # While the main loop runs: the changes it holds back, as a batch to commit
        # (see commit_policy).
        self.take_deferred: Callable[[], Batch] | None = None

    async def commit(self, batch: Batch) -> list[int]:
        """Commit ``batch`` (nothing when it is empty); returns the new events' ids."""
        if not batch:
            return []
        async with self.lock:
            return await self.journal.commit_async(batch)

    async def commit_retry(self, batch: Batch) -> None:
        """Commit a retry's batch after the held-back changes, which may hold its step's start."""
        async with self.lock:
            if self.take_deferred is not None:
                deferred = self.take_deferred()
                if deferred:
                    await self.journal.commit_async(deferred)
            await self.journal.commit_async(batch)

    async def set_run(self, to: str, reason: str) -> None:
        """Move the run to ``to`` in a transaction of its own."""
        run = self.run
        batch = Batch(run.run_id)
        batch.set_run(
            RunWrite(run.status, to, reason),
            SUPERVISOR if to in (R.ESCALATED, R.FAILED) else EXECUTOR,
            RunStatusChanged(from_status=run.status, to_status=to, reason=reason),
        )
        await self.commit(batch)
        run.status = to

    async def cancel_all(
        self, running: dict[str, asyncio.Task[Any]], batch: Batch, *, may_roll_back: bool = True
    ) -> None:
        """Cancel the running steps, then end every unfinished step and the run ``cancelled``.

        A cancel that asks for a rollback (and finds something to undo) instead moves
        the run to ``rolling_back``, its rollback steps still pending, for the engine to run.
        """
        for task in running.values():
            task.cancel()
        # Wait for the kinds to kill their processes before saying "cancelled".
        await asyncio.gather(*running.values(), return_exceptions=True)
        run = self.run
        reason = run.cancel_text()
        undo = may_roll_back and run.cancel_rollback
        if undo and run.rollback and any(s.status == S.SUCCEEDED for s in run.main):
            for s in run.main:
                if s.status in (S.PENDING, S.RUNNING):
                    transition(batch, s, S.CANCELLED, reason=reason)
            to, why = R.ROLLING_BACK, f"{reason}; rolling back"
        else:
            for s in (*run.main, *run.rollback):
                if s.status in (S.PENDING, S.RUNNING):
                    transition(batch, s, S.CANCELLED, reason=reason)
            to, why = R.CANCELLED, f"{reason}; nothing to roll back" if undo else reason
        batch.set_run(
            RunWrite(run.status, to, why),
            SUPERVISOR,
            RunStatusChanged(from_status=run.status, to_status=to, reason=why),
        )
        await self.commit(batch)
        run.status = to
