"""The rollback phase: undo what a failed (or cancelled) run actually did.

1. Decide, and commit the decisions with their events: a rollback step linked to
   a main step (the step's own ``undo``, or a plan-level step's ``undoes:``) whose
   step did not succeed is skipped; the order is recorded (``rollback.planned``).
2. Compensate: the steps' own undos start in reverse order of their steps'
   completion (the seq of each step's ``succeeded`` event). The undo of X waits
   for the undos of the steps that depend on X, directly or not (they completed
   after X); undos of independent steps overlap, up to ``max_parallel``.
3. Then the plan-level ``rollback:`` list, one step at a time, in order; a linked
   one waits like an undo.
4. A failed rollback step never stops the others; only those that wait for it are
   skipped. The run ends ``rolled_back`` when nothing failed, else ``escalated``
   with ``rollback_incomplete`` (what was and was not undone goes to the reviewer).
   A non-idempotent rollback step that a dead worker left running counts as failed
   ("may have partly run"): it is never called twice on its own.

A main step becomes ``rolled_back`` when its undo or a step linked to it
succeeded, or, having no link and a tool that is not ``read_only``, when every
unlinked plan-level rollback step succeeded. Nothing else is labelled undone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from reviews.models import EscalationCause
from runs.dbthreads import in_db_thread
from runs.events import RollbackPlanned
from runs.execution.commit_policy import commit_starting
from runs.execution.journal import Batch
from runs.execution.locks import LockQueue
from runs.execution.ports import SupervisionPort
from runs.execution.run_state import RunState
from runs.execution.runner import StepRunner, resolve_params
from runs.execution.steps import EXECUTOR, S, StepState, finish, transition
from runs.execution.writes import Committer
from runs.graph import dependents_of
from runs.models import RunStatus, StepStatus, TranscriptEvent
from runs.planning.schema import undo_key
from runs.tools.locks import LockKeyError, render_lock_keys

R = RunStatus
_DONE = frozenset({S.SUCCEEDED, S.ROLLED_BACK})


def completion_seqs(run_id: int) -> dict[str, int]:
    """Main step key → the seq of its latest ``succeeded`` event (sync, ORM)."""
    rows = TranscriptEvent.objects.filter(
        run_id=run_id,
        kind="step.status",
        payload__phase="main",
        payload__to_status=StepStatus.SUCCEEDED.value,
    ).values_list("seq", "payload__step")
    return {key: seq for seq, key in sorted(rows)}


def is_own_undo(state: StepState) -> bool:
    """Whether ``state`` is a main step's own ``undo`` (not a plan-level rollback step)."""
    return bool(state.undoes) and state.key == undo_key(state.undoes)


class Rollback:
    """Undoes a failed run: it ends ``rolled_back``, escalated, or ``cancelled``."""

    def __init__(
        self,
        run: RunState,
        committer: Committer,
        runner: StepRunner,
        supervision: SupervisionPort,
        cancel: asyncio.Event,
        *,
        seqs: Callable[[int], dict[str, int]] = completion_seqs,
        locks: LockQueue | None = None,
    ) -> None:
        self.run = run
        self.read_seqs = seqs
        self.committer = committer
        self.runner = runner
        self.supervision = supervision
        self.cancel = cancel
        self.locks = locks
        self.main = {s.key: s for s in run.main}
        self.by_key = {s.key: s for s in run.rollback}
        # Rollback steps that failed, or were skipped because they wait for one that did.
        self.blocked: set[str] = {s.key for s in run.rollback if s.status == S.FAILED}
        self.waits: dict[str, set[str]] = {}

    def _stopping(self) -> bool:
        """A plain cancel stops the rollback; a "cancel and roll back" is what runs it."""
        return self.cancel.is_set() and not self.run.cancel_rollback

    async def execute(self, failure: str, *, escalate: str | None = None) -> None:
        """Decide, compensate, run the plan-level list, conclude (see the module docstring)."""
        run = self.run
        seqs: dict[str, int] = {}
        if any(is_own_undo(s) and s.status == S.PENDING for s in run.rollback):
            seqs = await in_db_thread(lambda: self.read_seqs(run.run_id))
        undos, plan_level = self._order(seqs)
        batch = Batch(run.run_id)
        self._decide(batch, [*undos, *plan_level])
        self._recover(batch)
        await self.committer.commit(batch)
        if not await self._run_group(undos):
            return
        for state in plan_level:
            if not await self._run_group([state]):
                return
        await self._conclude(failure, escalate)

    def _order(self, seqs: dict[str, int]) -> tuple[list[StepState], list[StepState]]:
        """(own undos, latest-completed step first; the plan-level list), and who waits for whom."""
        undos = [s for s in self.run.rollback if is_own_undo(s)]
        plan_level = [s for s in self.run.rollback if not is_own_undo(s)]
        undos.sort(key=lambda s: -seqs.get(s.undoes, 0))
        dependents = dependents_of({s.key: s.depends_on for s in self.run.main})
        undo_of = {s.undoes: s.key for s in undos}
        for state in self.run.rollback:
            if not state.undoes or state.undoes not in self.main:
                continue
            later: set[str] = set()
            stack = list(dependents.get(state.undoes, ()))
            while stack:  # every step that depends on it, directly or not
                key = stack.pop()
                if key not in later:
                    later.add(key)
                    stack.extend(dependents.get(key, ()))
            self.waits[state.key] = {undo_of[k] for k in later if k in undo_of}
        return undos, plan_level

    def _decide(self, batch: Batch, order: list[StepState]) -> None:
        """Skip the steps linked to a main step that did not succeed; record the order."""
        skipped = []
        for state in order:
            target = self.main.get(state.undoes) if state.undoes else None
            if state.status != S.PENDING or not state.undoes:
                continue
            if target is None or target.status not in _DONE:
                status = target.status if target is not None else "missing"
                transition(
                    batch,
                    state,
                    S.SKIPPED,
                    reason=f"nothing to undo: {state.undoes} did not succeed ({status})",
                )
                skipped.append(state.key)
        planned = [s.key for s in order if s.status in (S.PENDING, S.RUNNING)]
        batch.events.append((EXECUTOR, RollbackPlanned(order=planned, skipped=skipped)))

    def _recover(self, batch: Batch) -> None:
        """A rollback step left running by a dead worker: re-run if repeatable, else failed.

        A non-idempotent one may have partly run: it is not called again but counts as
        failed, so the rest of the rollback runs and a reviewer decides about it (retry it,
        or mark it done by hand) in the ``rollback_incomplete`` escalation.
        """
        for state in self.run.rollback:
            if state.status != S.RUNNING:
                continue
            if state.tool is not None and state.tool.repeatable:
                transition(batch, state, S.PENDING, reason="re-queued after a worker stopped")
                continue
            transition(
                batch,
                state,
                S.FAILED,
                error="may have partly run: its worker stopped while it was running and its "
                "tool is neither idempotent nor honours idempotency keys",
            )
            self.blocked.add(state.key)

    def _ready(self, state: StepState, batch: Batch) -> bool | None:
        """True: may start; False: waits; None: skipped (it waits for a step that failed)."""
        waits = self.waits.get(state.key, set())
        failed = sorted(waits & self.blocked)
        if failed:
            transition(
                batch,
                state,
                S.SKIPPED,
                reason=f"not run: it waits for {', '.join(failed)}, which did not succeed",
            )
            self.blocked.add(state.key)
            return None
        return all(self.by_key[k].status not in (S.PENDING, S.RUNNING) for k in waits)

    def _starts(
        self, queue: list[StepState], running: int, batch: Batch
    ) -> tuple[list[Any], list[Any]]:
        """Take the steps of ``queue`` that may start now (in queue order), marked running.

        Steps that declare resource locks come back apart: they start once they hold them.
        """
        starts: list[Any] = []
        locked: list[Any] = []
        results = {s.key: s.result for s in self.run.main if s.status in _DONE}
        for state in list(queue):
            if running + len(starts) >= self.run.max_parallel:
                break
            ready = self._ready(state, batch)
            if ready is False:
                continue
            queue.remove(state)
            if ready is None:
                continue
            try:
                params = resolve_params(state, results) if state.has_refs else state.params
            except ValueError as exc:
                transition(batch, state, S.RUNNING)
                transition(batch, state, S.FAILED, error=str(exc))
                self.blocked.add(state.key)
                continue
            if state.locks and self.locks is not None:
                locked.append((state, params))  # marked running once it holds its keys
                continue
            transition(batch, state, S.RUNNING)
            starts.append((state, params))
        return starts, locked

    async def _run_group(self, group: list[StepState]) -> bool:
        """Run the pending steps of ``group`` as they become ready; False when cancelled."""
        queue = [s for s in group if s.status == S.PENDING]
        running: dict[str, tuple[StepState, asyncio.Task[Any]]] = {}
        run_step = self.runner.run_step

        def start(starts: list[Any]) -> list[asyncio.Task[Any]]:
            tasks = []
            for state, params in starts:
                task = asyncio.create_task(run_step(state, params))
                running[state.key] = (state, task)
                tasks.append(task)
            return tasks

        while queue or running:
            if self._stopping():
                tasks = {key: task for key, (_, task) in running.items()}
                await self.committer.cancel_all(tasks, Batch(self.run.run_id), may_roll_back=False)
                return False
            batch = Batch(self.run.run_id)
            starts, locked = self._starts(queue, len(running), batch)
            for state, params in locked:
                held = await self._lock(state, params, batch)
                if held is None:  # cancelled while it waited
                    tasks = {key: task for key, (_, task) in running.items()}
                    await self.committer.cancel_all(tasks, batch, may_roll_back=False)
                    return False
                if held:
                    starts.append((state, params))
            await commit_starting(self.committer, batch, starts, start)
            if not running:
                break  # what is left waits for steps outside this group: nothing to wait on
            await self._settle(running)
        return True

    async def _lock(self, state: StepState, params: dict[str, Any], batch: Batch) -> bool | None:
        """Take ``state``'s resource locks and mark it running: True; False: a key could not be
        rendered (the step failed); None: a plain cancel came while it waited."""
        assert self.locks is not None
        try:
            keys = render_lock_keys(state.locks, params)
        except LockKeyError as exc:
            transition(batch, state, S.RUNNING)
            transition(batch, state, S.FAILED, error=str(exc))
            self.blocked.add(state.key)
            return False
        if keys:
            acquire = asyncio.create_task(self.locks.acquire(state, keys))
            waiting: set[asyncio.Future[Any]] = {acquire}
            if not self.run.cancel_rollback:
                waiting.add(asyncio.create_task(self.cancel.wait()))
            done, pending = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for other in pending:
                other.cancel()
            if acquire not in done:
                await asyncio.gather(acquire, return_exceptions=True)
                return None
            acquire.result()  # a lost run raises here
            self.locks.acquired(batch, state, keys)
        transition(batch, state, S.RUNNING)
        return True

    async def _settle(self, running: dict[str, tuple[StepState, asyncio.Task[Any]]]) -> None:
        """Wait for a step to finish (or a cancel) and record every finished one."""
        waiting: set[asyncio.Future[Any]] = {task for _, task in running.values()}
        cancel_wait = None
        if not self.run.cancel_rollback:
            cancel_wait = asyncio.create_task(self.cancel.wait())
            waiting.add(cancel_wait)
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if cancel_wait is not None:
            cancel_wait.cancel()
        if self._stopping():
            return  # _run_group cancels what still runs
        batch = Batch(self.run.run_id)
        for key, (state, task) in list(running.items()):
            if task not in done:
                continue
            del running[key]
            outcome = task.result()
            finish(batch, state, outcome)
            if not outcome.ok:
                self.blocked.add(state.key)
                continue
            target = self.main.get(state.undoes) if state.undoes else None
            if target is not None and target.status == S.SUCCEEDED:
                transition(batch, target, S.ROLLED_BACK, reason=f"undone by {state.key}")
        await self.committer.commit(batch)

    async def _conclude(self, failure: str, escalate: str | None) -> None:
        """Label what the plan's unlinked rollback undid; end rolled back, or escalate."""
        run = self.run
        batch = Batch(run.run_id)
        unlinked = [s for s in run.rollback if not s.undoes]
        linked = {s.undoes for s in run.rollback if s.undoes}
        if unlinked and all(s.status == S.SUCCEEDED for s in unlinked):
            by = ", ".join(s.key for s in unlinked)
            for s in run.main:
                read_only = s.tool is not None and s.tool.read_only
                if s.status == S.SUCCEEDED and not read_only and s.key not in linked:
                    transition(
                        batch, s, S.ROLLED_BACK, reason=f"undone by the plan's rollback ({by})"
                    )
        await self.committer.commit(batch)
        failed = [s for s in run.rollback if s.status == S.FAILED]
        not_run = [s for s in run.rollback if s.key in self.blocked and s.status == S.SKIPPED]
        undone = [s.key for s in run.main if s.status == S.ROLLED_BACK]
        if failed or not_run:
            reason = (
                f"{failure}; rollback incomplete: "
                + "; ".join(f"{s.key} ({s.tool_name}) failed: {s.error}" for s in failed)
                + (f"; not run: {', '.join(s.key for s in not_run)}" if not_run else "")
                + f"; undone: {', '.join(undone) or 'nothing'}"
            )
            step = failed[0] if failed else not_run[0]
            await self.supervision.escalate(
                run, EscalationCause.ROLLBACK_INCOMPLETE, reason, step=step
            )
            return
        ran = sum(1 for s in run.rollback if s.status == S.SUCCEEDED)
        reason = f"{failure}; rolled back ({ran} rollback step(s) ran"
        reason += f"; undone: {', '.join(undone)})" if undone else ")"
        if escalate:
            await self.supervision.escalate(run, escalate, reason)
        else:
            await self.committer.set_run(R.ROLLED_BACK, reason)
