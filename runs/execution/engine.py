"""The executor: runs a plan's steps as a DAG, then rolls back or finishes the run.

``RunExecutor`` and ``notify_cancel`` are the public surface; the work is done by
units of their own: ``run_state`` (what is known of the run, rebuilt from the
database, so a run can stop in one process and continue in another),
``scheduler`` (which steps are ready), ``commit_policy`` (when changes commit),
``runner`` (one step's call), ``main_phase`` (the loop over those) and
``rollback``. Supervision and the planner come in as ``ports`` protocols.

The algorithm:
1. Load the run, its current plan's steps and their tools; a step left
   ``running`` by a dead worker is re-run only when its tool is idempotent or
   honours the step's idempotency key, otherwise the run escalates ("may have
   partly run").
2. Main phase: a step starts the moment its own dependencies have succeeded and
   a concurrency slot is free; starts and finishes commit by the commit policy.
3. On the first failure no new step starts; running steps finish; the rest are
   skipped; the planner may adopt a new plan version, else the run is rolled back
   (``rollback``: the steps' own undos, latest-completed first, then the plan's
   rollback list) and ends ``rolled_back``, ``failed`` without any rollback step,
   or escalated (``rollback_incomplete`` when a rollback step failed).
4. On cancel, running steps are cancelled (their processes killed) and every
   unfinished step and the run end ``cancelled``; a cancel that asks for a
   rollback cancels the unfinished main steps and rolls the run back instead.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from reviews.models import EscalationCause
from runs import llmtools
from runs.dbthreads import in_db_thread
from runs.execution.budgets import Usage, budgets_for, run_usage
from runs.execution.deadlines import Deadlines
from runs.execution.journal import Journal, StaleStateError
from runs.execution.journal_link import apply_held
from runs.execution.locks import LockQueue
from runs.execution.loops import run_in_thread_loop
from runs.execution.main_phase import MainPhase, More
from runs.execution.ports import PlanningPort, SupervisionPort
from runs.execution.rollback import Rollback
from runs.execution.run_state import RunState
from runs.execution.runner import StepRunner
from runs.execution.steps import StepState
from runs.execution.writes import Committer
from runs.models import Run, RunStatus, Step, StepStatus
from runs.planning.references import find_references
from runs.planning.subplans import SUBPLAN_SPEC, is_subplan
from runs.publish import publisher
from runs.statemachine import RUN_TERMINAL
from runs.tools.base import ToolSpec
from runs.tools.kinds.agent import KIND as AGENT

log = logging.getLogger(__name__)
R = RunStatus
_LOST = "lost"  # the run's state changed under us; execute() re-reads it

__all__ = ["RunExecutor", "notify_cancel"]


class RunExecutor:
    """Executes one run in the calling thread's event loop; see the module docstring."""

    def __init__(
        self,
        run_id: int,
        *,
        supervision: SupervisionPort,
        planning: PlanningPort,
        lease_owner: str | None = None,
    ) -> None:
        self.run = RunState(run_id, lease_owner)
        self.supervision = supervision
        self.planning = planning
        self.heartbeat_seconds = float(settings.PLANNERWEB_HEARTBEAT_SECONDS)
        self.backoff_seconds = float(settings.PLANNERWEB_RETRY_BACKOFF_SECONDS)
        self.lock_poll_seconds = float(settings.PLANNERWEB_LOCK_POLL_SECONDS)
        self.journal: Journal
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancel: asyncio.Event | None = None
        # Executed beside other runs by a host, which renews the lease (``heard``).
        self.hosted = False
        # Main-phase steps started and not yet recorded as finished, by key.
        self._running: dict[str, asyncio.Task[Any]] = {}

    @property
    def run_id(self) -> int:
        """The run this executor executes."""
        return self.run.run_id

    @property
    def status(self) -> str:
        """The run's status as this executor last wrote or read it."""
        return self.run.status

    def load(self) -> None:
        """Read the run and its current plan's steps from the database (sync, ORM)."""
        load_run(self.run, planning=self.planning, supervision=self.supervision)

    def execute(self) -> str:
        """Load and run to a stop; returns the run's final (or paused) status."""
        self.load()
        return self.execute_loaded()

    def execute_loaded(self) -> str:
        """Run the loaded run to a stop in this thread, on its kept loop, with a journal of its own."""
        if not self.has_work:
            return self.status
        with Journal(fence=self.run.fence) as self.journal:
            status = self.run_loaded()
        if status == _LOST:
            return Run.objects.values_list("status", flat=True).get(pk=self.run_id)
        return status

    @property
    def has_work(self) -> bool:
        """Whether the loaded run is in a state this executor runs (else it is left as it is)."""
        return self.status in (R.EXECUTING, R.REPLANNING, R.ROLLING_BACK)

    async def execute_hosted(self, journal: Journal) -> str:
        """Run the loaded run to a stop on the running (shared) loop, writing through ``journal``.

        What a worker hosting many runs awaits (``runs.lifecycle.host``); the run
        must be loaded and have work. Returns the run's final (or paused) status.
        """
        self.journal = journal
        self.hosted = True
        status = await self._main()
        if status == _LOST:
            return await in_db_thread(
                lambda: Run.objects.values_list("status", flat=True).get(pk=self.run_id)
            )
        return status

    def run_loaded(self) -> str:
        """Run the loaded run to a stop on this thread's kept loop; needs ``self.journal``."""
        return run_in_thread_loop(self._main())

    def request_cancel(
        self, by: str | None = None, *, rollback: bool = False, reason: str = ""
    ) -> None:
        """Thread-safe: stop this run as soon as possible (in-process fast path)."""
        self.run.cancel_by = by or self.run.cancel_by
        self.run.cancel_rollback = self.run.cancel_rollback or rollback
        self.run.cancel_reason = reason or self.run.cancel_reason
        loop, event = self._loop, self._cancel
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)
        else:
            self.run.cancel_requested = True

    async def _main(self) -> str:
        """Build the units on this loop, run the phases, and stop cleanly if the run is lost."""
        self._loop = asyncio.get_running_loop()
        self._cancel = asyncio.Event()
        self._deadlines = Deadlines(self._loop)
        self._committer = Committer(self.run, self.journal)
        self._runner = StepRunner(
            self.run,
            self._committer,
            self._deadlines,
            backoff_seconds=self.backoff_seconds,
            supervision=self.supervision,
        )
        self._locks = LockQueue(
            self.journal, self._committer, self.run_id, poll_seconds=self.lock_poll_seconds
        )
        if any(s.locks for s in (*self.run.main, *self.run.rollback)):
            # Rows an executor that stopped before us left: their steps will take them anew.
            self._locks.release_run()
        if self.run.cancel_requested:
            self._cancel.set()
        _active[self.run_id] = self
        # Hosted runs are renewed by their host, all at once (``runs.lifecycle.host``).
        heartbeat = asyncio.create_task(self._heartbeat()) if not self.hosted else None
        try:
            return await self._phases()
        except StaleStateError as exc:
            # Another worker took the run over (our lease lapsed) or someone ended it:
            # stop touching it; nothing of this batch was written.
            log.warning("run %s: stopping, its state changed elsewhere: %s", self.run_id, exc)
            tasks = list(self._running.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return _LOST
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            self._deadlines.close()
            _active.pop(self.run_id, None)
            # Events committed on this loop's behalf must be sent before the loop closes.
            await publisher.flush()

    async def _phases(self) -> str:
        """Main steps, then (after a failure or a cancel that rolls back) the rollback."""
        run = self.run
        escalate: str | None = None
        if run.status in (R.EXECUTING, R.REPLANNING):
            failure = await self._main_and_replans()
            if run.status == R.ROLLING_BACK:  # cancelled with "roll back"
                failure = run.cancel_text()
            elif failure is None or run.status == R.AWAITING_APPROVAL:
                return run.status  # done, or a replanned version waits for its approval
            elif run.stop is not None and run.stop[0] == EscalationCause.EVALUATOR_FAIL:
                # Replans exhausted on an evaluator fail: a reviewer decides (retry, skip, edit,
                # roll back, abort); nothing is undone before they do.
                failed = next((s for s in run.main if s.id == run.stop[1]), None)
                await self.supervision.escalate(
                    run, EscalationCause.EVALUATOR_FAIL, failure, step=failed
                )
                return run.status
            else:
                escalate = run.stop[0] if run.stop is not None else None
                if not run.rollback:
                    if escalate:
                        await self.supervision.escalate(run, escalate, failure)
                    else:
                        await self._committer.set_run(R.FAILED, failure)
                    return run.status
                await self._committer.set_run(R.ROLLING_BACK, f"rolling back after: {failure}")
        elif run.cancel_rollback:
            failure = run.cancel_text()
        else:
            failure = run.first_failure_reason() or "resumed rollback"
        assert self._cancel is not None
        rollback = Rollback(
            run, self._committer, self._runner, self.supervision, self._cancel, locks=self._locks
        )
        await rollback.execute(failure, escalate=escalate)
        return run.status

    async def _main_and_replans(self) -> str | None:
        """The main phase, replanning after each failure while the planner adopts a new version."""
        run = self.run
        if run.status == R.EXECUTING:
            failure = await self._execute_main()
        else:  # the worker that was replanning died: replan again
            failure = run.first_failure_reason() or "replanning was interrupted"
        # Replanning hook: a new plan version, or give up. A budget breach never replans.
        while failure is not None and not (
            run.stop
            and run.stop[0] in (EscalationCause.BUDGET_BREACHED, EscalationCause.PARTIAL_RUN)
        ):
            adopted, failure = await self._replan(failure)
            if not adopted:
                break
            failure = await self._execute_main()
        return failure

    async def _execute_main(self) -> str | None:
        """Run the main steps; returns None when the run stopped or parked, else the failure reason."""
        assert self._cancel is not None
        while True:
            phase = MainPhase(
                self.run,
                committer=self._committer,
                runner=self._runner,
                supervision=self.supervision,
                deadlines=self._deadlines,
                cancel=self._cancel,
                running=self._running,
                next_step=self._next_step,
                locks=self._locks,
            )
            outcome = await phase.execute()
            if not isinstance(outcome, More):
                return outcome

    async def _replan(self, failure: str) -> tuple[bool, str]:
        """Ask the planner for a new plan version, in a helper thread (it calls a model).

        Adopted: the run is ``executing`` a new version whose finished steps are
        already succeeded; reload and go on. Not adopted: the failure reason gains
        the replanner's report and the rollback follows as before.
        """
        run = self.run

        def work() -> tuple[bool, str]:
            adopted, report = self.planning.replan(
                run_id=run.run_id, failure=failure, fence=run.fence
            )
            if adopted:
                self.load()
            else:
                run.status = Run.objects.values_list("status", flat=True).get(pk=run.run_id)
            return adopted, report

        adopted, report = await in_db_thread(work)
        if adopted:
            return True, failure
        return False, f"{failure}; {report}" if report else failure

    async def _next_step(self) -> tuple[bool, str | None]:
        """Iterative tasks: ask the planner for the next step, in a helper thread.

        (True, None): a new plan version with one more pending step is current
        (reloaded); run it. (False, None): the planner said stop; the run
        succeeds, unless it asked a question instead (``run.status`` is then
        ``awaiting_input``: the run waits, released). (False, reason): no next
        step; the run fails with the reason.
        """
        run = self.run

        def work() -> tuple[str, str]:
            action, reason = self.planning.next_step(run_id=run.run_id, fence=run.fence)
            if action == "continue":
                self.load()
            return action, reason

        action, reason = await in_db_thread(work)
        if action == "lost":
            raise StaleStateError(reason)
        if action == "ask":
            run.status = R.AWAITING_INPUT
            return False, None
        if action == "continue":
            return True, None
        return False, reason if action == "fail" else None

    async def _heartbeat(self) -> None:
        """Renew the lease and notice cancel requests made in other processes."""
        seconds = self.heartbeat_seconds
        while True:
            await asyncio.sleep(seconds)
            try:
                row = await self.journal.call(
                    self.journal.heartbeat,
                    self.run_id,
                    timezone.now() + timedelta(seconds=seconds * 5),
                )
            except Exception:
                log.exception("heartbeat of run %s failed", self.run_id)
                continue
            if not self.heard(row):
                return

    def heard(self, row: tuple[Any, ...]) -> bool:
        """Act on a heartbeat's row (``Journal.heartbeat``); False once the lease is lost.

        Called by ``_heartbeat``, or by the host that renews the leases of all its runs at once.
        """
        requested_at, by, owner, rollback, why, status = row
        if self._cancel is None:  # not started yet: nothing to stop
            return True
        if status in RUN_TERMINAL:  # our own last commit ended it (and cleared the lease)
            return False
        if owner != self.run.fence:
            # Our lease lapsed and another worker took the run: stop our tools now.
            # The cancel path's commit then fails the fence check, so nothing is written.
            log.warning("run %s: lease lost to %r; stopping", self.run_id, owner)
            self._cancel.set()
            return False
        if requested_at is not None:
            self.run.cancel_by = by
            self.run.cancel_rollback = bool(rollback)
            self.run.cancel_reason = why or ""
            self._cancel.set()
        return True


# Executors running in this process, for the in-process cancel fast path.
_active: dict[int, RunExecutor] = {}


def notify_cancel(
    run_id: int, by: str | None = None, *, rollback: bool = False, reason: str = ""
) -> None:
    """Tell an executor in this process to stop now (other processes notice on heartbeat)."""
    executor = _active.get(run_id)
    if executor is not None:
        executor.request_cancel(by, rollback=rollback, reason=reason)


def load_run(run: RunState, *, planning: PlanningPort, supervision: SupervisionPort) -> None:
    """Fill ``run`` from the database: the run row, its current plan's steps and their tools."""
    rows = Run.objects.select_related("current_plan", "task")
    row = rows.get(pk=run.run_id)
    if row.held:  # a batch its last writer held: read the run as it committed
        apply_held(run.run_id)
        row = rows.get(pk=run.run_id)
    run.status = row.status
    run.iterative = planning.is_iterative(row.task)
    run.budgets = budgets_for(row.task)
    run.budgeted = bool(run.budgets)
    # Usage is read only when a budget applies: no query for runs without one.
    run.usage = run_usage(run.run_id, row.started_at) if run.budgeted else Usage()
    if run.fence is None:
        run.fence = row.lease_owner
    run.max_parallel = max(1, row.max_parallel)
    run.cancel_by = row.cancel_requested_by.get_username() if row.cancel_requested_by else None
    run.cancel_requested = row.cancel_requested_at is not None
    run.cancel_rollback = row.cancel_rollback
    run.cancel_reason = row.cancel_reason
    run.starting = frozenset(row.starting or ())
    steps = (
        Step.objects.filter(plan=row.current_plan)
        .select_related("tool")
        .order_by("phase", "position")
    )
    specs: dict[int, ToolSpec] = {}
    run.main, run.rollback = [], []
    for s in steps:
        spec = None
        if is_subplan(s.tool_id, s.tool_name):
            spec = SUBPLAN_SPEC  # executed as a child run (runs/execution/children.py)
        elif s.tool is not None:
            spec = specs.get(s.tool_id)  # type: ignore[arg-type]
            if spec is None:
                spec = specs[s.tool_id] = ToolSpec.from_model(s.tool)  # type: ignore[index]
        state = StepState(
            id=s.pk,
            key=s.key,
            phase=s.phase,
            tool=spec,
            tool_name=s.tool_name,
            params=s.params,
            depends_on=tuple(s.depends_on or ()),
            status=s.status,
            attempts=s.attempts,
            result=s.result,
            error=s.error,
            started_at=s.started_at,
            finished_at=s.finished_at,
            has_refs=bool(find_references(s.params)),
            confidence=s.confidence,
            undoes=s.undoes,
            locks=(*spec.locks, *s.locks) if spec is not None else tuple(s.locks or ()),
            idempotency_key=str(s.idempotency_key),
        )
        if s.status == StepStatus.RUNNING and spec is not None and spec.kind == AGENT:
            state.in_doubt = llmtools.in_doubt(state.idempotency_key or "")
        (run.main if s.phase == Step.Phase.MAIN else run.rollback).append(state)
    supervision.load_gates(run)
