"""One pass over the current plan's main steps: start what is ready, record what finishes, conclude.

The loop:
1. settle what the last worker left (``Scheduler.recover``), queue pending steps;
2. start ready steps up to ``max_parallel`` (gates, budgets and params checked
   first); commit them by the commit policy (``PendingWrites``);
3. wait for finishes (or the cancel and idle marks), release their dependents;
4. when nothing is left to run: succeed, hand over to the iterative planner,
   or skip what did not start and return the failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from reviews.models import EscalationCause
from runs.evaluation.checks import FAIL
from runs.events import RunStatusChanged
from runs.execution.commit_policy import PendingWrites, Starts
from runs.execution.deadlines import Deadlines
from runs.execution.journal import Batch, RunWrite, StaleStateError
from runs.execution.locks import LockQueue
from runs.execution.ports import (
    GATE_ABORT,
    GATE_CHILD,
    GATE_NEEDED,
    GATE_OPEN,
    GATE_RUN,
    SupervisionPort,
)
from runs.execution.run_state import RunState
from runs.execution.runner import StepRunner, resolve_params
from runs.execution.scheduler import Scheduler
from runs.execution.steps import EXECUTOR, Outcome, S, StepState, change, transition
from runs.execution.writes import Committer
from runs.models import RunStatus
from runs.tools.locks import render_lock_keys

R = RunStatus


class More:
    """The iterative planner added a step: run the main phase again."""


MORE = More()
IDLE = object()  # queued by the loop's idle callback: commit what waits for it
LOCKED = object()  # first of a (LOCKED, step, keys) item: the step holds its resource locks
ANNOUNCED = "its worker stopped after announcing its start: its tool may have been called"


class Inbox:
    """What step tasks hand the main loop: finishes, and the cancel and idle marks.

    ``asyncio.Queue`` does more per item than this needs (sizes, a join count, an
    Event, waiting putters), and the main loop takes everything at once anyway.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
        """Hand over ``item`` and wake the loop if it waits."""
        self._items.append(item)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self) -> list[Any]:
        """Everything put since the last take; waits while there is nothing."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        items, self._items = self._items, []
        return items


class MainPhase:
    """Runs the main steps of one plan version (see the module docstring)."""

    def __init__(
        self,
        run: RunState,
        *,
        committer: Committer,
        runner: StepRunner,
        supervision: SupervisionPort,
        deadlines: Deadlines,
        cancel: asyncio.Event,
        running: dict[str, asyncio.Task[Any]],
        next_step: Callable[[], Awaitable[tuple[bool, str | None]]],
        locks: LockQueue,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.run = run
        self.committer = committer
        self.runner = runner
        self.supervision = supervision
        self.deadlines = deadlines
        self.cancel = cancel
        self.next_step = next_step
        self.loop = loop
        self.scheduler = Scheduler(run.main, running)
        self.pending = PendingWrites(run.run_id, committer, loop)
        # Finished steps; None: cancel requested; IDLE: the loop has nothing else to run;
        # a StaleStateError: a step's retry could not commit.
        self.inbox = Inbox()
        self.failure: str | None = None
        self.locks = locks
        # Steps waiting for their resource locks (their tasks sit in ``running``), and
        # steps holding them that have not started yet, with their keys.
        self.acquiring: set[str] = set()
        self.locked: dict[str, tuple[str, ...]] = {}

    async def execute(self) -> str | More | None:
        """Returns None when the run stopped or parked, ``MORE``, or else the failure reason."""
        self.run.stop = None
        if self.run.starting:
            await self._record_announced()
        partial = self._prepare()
        if partial is not None:
            await self.committer.commit(self.pending.batch)
            await self.supervision.escalate(
                self.run,
                EscalationCause.PARTIAL_RUN,
                partial.in_doubt
                or f"step {partial.key} may have partly run: its worker stopped while it was "
                "running and its tool is neither idempotent nor honours idempotency keys",
                step=partial,
            )
            return None
        cancel_wait = asyncio.create_task(self._wait_cancel())
        self.committer.take_deferred = self.pending.take
        try:
            stopped = await self._loop()
        finally:
            cancel_wait.cancel()
            self.committer.take_deferred = None
        if stopped:
            return None
        return await self._conclude()

    async def _record_announced(self) -> None:
        """Record as started the steps a stopped worker announced but did not record running.

        Their tools may have been called (``commit_policy.PendingWrites``): from here
        on they are steps left ``running``, which ``Scheduler.recover`` calls again
        only when their tool allows it.
        """
        batch = Batch(self.run.run_id)
        for s in self.run.main:
            if s.id in self.run.starting and s.status == S.PENDING:
                transition(batch, s, S.RUNNING, reason=ANNOUNCED)
        batch.starting = []
        await self.committer.commit(batch)
        self.run.starting = frozenset()

    def _prepare(self) -> StepState | None:
        """Take in the loaded statuses; returns a step that may have partly run, if any."""
        batch = self.pending.batch
        partial, self.failure = self.scheduler.recover(batch)
        if partial is not None:
            return partial
        if self.failure is None:
            self.scheduler.queue(batch)
            if self.run.budgeted:  # checked on (re)start and after every replan
                self.failure = self.run.over_budget(0)
        return None

    async def _loop(self) -> bool:
        """Start, commit and wait until nothing is left to run; True when the run stopped here."""
        scheduler, pending, supervision = self.scheduler, self.pending, self.supervision
        running, gated = scheduler.running, scheduler.gated
        while True:
            starts = self._take_starts()
            if scheduler.idle(bool(starts)):
                pending.write()
                return False  # the last finishes commit together with how the run ends
            await pending.commit(starts, self._start_tasks, self._on_idle, gated=bool(gated))
            if gated and any(g.gate == GATE_NEEDED for g in gated.values()):
                await supervision.open_gates(self.run, list(gated.values()))
            if not running:
                if self.failure is None and gated and not self.cancel.is_set():
                    decided = await supervision.park(self.run, list(gated.values()))
                    if decided is None:
                        return True  # parked: the run waits for a reviewer, holding nothing
                    scheduler.ungate(decided)
                    continue
                return False
            items = await self.inbox.take()
            if gated:  # a reviewer may have decided while other steps ran
                scheduler.ungate(await supervision.gate_decisions(self.run, list(gated.values())))
            if self._settle(items):
                pending.write()
                await self.committer.cancel_all(running, pending.batch)
                return True
            if self.failure is not None and (self.acquiring or self.locked):
                await self._drop_locks()

    def _take_starts(self) -> Starts:
        """Pop ready steps while slots are free; gates, budgets and params decide which start."""
        scheduler, pending, run = self.scheduler, self.pending, self.run
        running, ready, by_key = scheduler.running, scheduler.ready, scheduler.by_key
        limit = run.max_parallel if run.share is None else min(run.max_parallel, run.share())
        starts: Starts = []
        while self.failure is None and ready and len(running) + len(starts) < limit:
            state = by_key[ready.popleft()]  # Scheduler.pop_ready, without a call per step
            if state.gate is not None and state.gate != GATE_RUN:
                self._at_gate(state)
                continue
            if run.budgeted and state.key not in self.locked:  # counted once, when it queued
                breach = run.over_budget(1)
                if breach is not None:
                    self.failure = breach
                    break
                run.usage.steps += 1
            try:
                params = (
                    resolve_params(state, scheduler.results) if state.has_refs else state.params
                )
                if state.locks and self._must_wait(state, params):
                    continue
            except ValueError as exc:
                pending.write()
                transition(pending.batch, state, S.RUNNING)
                transition(pending.batch, state, S.FAILED, error=str(exc))
                self.failure = f"step {state.key} failed: {exc}"
                continue
            pending.started(state, change(pending.batch, state, S.RUNNING))
            starts.append((state, params))
        return starts

    def _must_wait(self, state: StepState, params: Any) -> bool:
        """Whether the step waits for its resource locks first (its waiting task is started here).

        Raises ``LockKeyError`` (a ``ValueError``) when a key cannot be rendered.
        """
        keys = self.locked.pop(state.key, None)
        if keys is not None:  # granted: it starts in this round's commit
            self.locks.acquired(self.pending.batch, state, keys)
            return False
        keys = render_lock_keys(state.locks, params)
        if not keys:
            return False
        self.scheduler.running[state.key] = self.loop.create_task(self._acquire(state, keys))
        self.acquiring.add(state.key)
        return True

    async def _acquire(self, state: StepState, keys: tuple[str, ...]) -> None:
        """A waiting step's task: hand the loop its keys once they are all held."""
        try:
            await self.locks.acquire(state, keys)
        except StaleStateError as exc:
            self.inbox.put(exc)
            return
        self.inbox.put((LOCKED, state, keys))

    async def _drop_locks(self) -> None:
        """The run failed: steps still waiting for locks, or holding them unstarted, give them up."""
        running = self.scheduler.running
        waits = [running.pop(key) for key in self.acquiring]
        self.acquiring.clear()
        for task in waits:
            task.cancel()  # its rows go as it stops
        await asyncio.gather(*waits, return_exceptions=True)
        held = [self.scheduler.by_key[key].id for key in self.locked]
        self.locked.clear()
        self.locks.release_steps(held)

    def _at_gate(self, state: StepState) -> None:
        """A gated step came up: it waits for its reviewer, or is skipped as they decided."""
        if state.gate in (GATE_NEEDED, GATE_OPEN, GATE_CHILD):
            self.scheduler.gate(state)  # waits; independent steps go on
            return
        self.pending.write()
        transition(self.pending.batch, state, S.SKIPPED, reason=f"{state.gate} decided at its gate")
        if state.gate == GATE_ABORT:
            self.failure = f"step {state.key} was aborted at its gate"

    def _start_tasks(self, starts: Starts) -> list[asyncio.Task[Any]]:
        """Start main steps; those sharing a timeout share one deadline (``deadlines``)."""
        create_task = self.loop.create_task
        running = self.scheduler.running
        run_one = self._run_one
        by_timeout: dict[float, list[asyncio.Task[Any]]] = {}
        started = []
        for state, params in starts:
            task = running[state.key] = create_task(run_one(state, params))
            started.append(task)
            if state.tool is not None:
                by_timeout.setdefault(state.tool.timeout_seconds, []).append(task)
        for seconds, tasks in by_timeout.items():
            self.deadlines.arm(tasks, seconds)
        return started

    async def _run_one(self, state: StepState, params: Any) -> None:
        """One step's task: hand its outcome (or a lost run) to the loop through the inbox."""
        try:
            outcome = await self.runner.run_step(state, params)
        except StaleStateError as exc:  # a retry's commit found the run moved elsewhere
            self.inbox.put(exc)
            return
        self.inbox.put((state, outcome))

    def _on_idle(self) -> None:
        """The loop went idle: wake the main loop to commit what waits for it."""
        self.inbox.put(IDLE)

    async def _wait_cancel(self) -> None:
        """Wake the main loop when a cancel is requested, even while steps still run."""
        await self.cancel.wait()
        self.inbox.put(None)

    def _settle(self, items: list[Any]) -> bool:
        """Record what the inbox held; True when a cancel was requested."""
        scheduler, pending = self.scheduler, self.pending
        for item in items:
            if item is None:  # cancel requested; record what already finished first
                continue
            if item is IDLE:
                pending.went_idle()
                continue
            if isinstance(item, StaleStateError):
                raise item  # the run is lost to us (see RunExecutor._main)
            if item[0] is LOCKED:  # a step holds its locks: it starts in the next round
                _, state, keys = item
                if state.key not in self.acquiring:  # given up meanwhile (``_drop_locks``)
                    self.locks.release_steps([state.id])
                    continue
                del scheduler.running[state.key]
                self.acquiring.discard(state.key)
                self.locked[state.key] = keys
                scheduler.ready.appendleft(state.key)
                continue
            state, outcome = item
            scheduler.finished(state, outcome)
            pending.finished(state, outcome)
            if not outcome.ok and self.failure is None:
                self._failed(state, outcome)
        return None in items

    def _failed(self, state: StepState, outcome: Outcome) -> None:
        """The first failure: why the run stops; an evaluator fail may go to a reviewer."""
        if outcome.verdict is not None and outcome.verdict.status == FAIL:
            self.run.stop = (EscalationCause.EVALUATOR_FAIL, state.id)
            self.failure = f"step {state.key} failed the evaluator: {outcome.verdict.reason}"
        else:
            self.failure = f"step {state.key} failed: {outcome.error}"

    async def _conclude(self) -> str | More | None:
        """Nothing is left to run: end the run, hand over to the iterative planner, or fail."""
        batch, run, committer = self.pending.batch, self.run, self.committer
        if self.cancel.is_set():
            await committer.cancel_all(self.scheduler.running, batch)
            return None
        if self.failure is None and run.iterative:  # the planner decides what comes next
            await committer.commit(batch)  # the planner reads the finished steps
            batch = Batch(run.run_id)
            more, self.failure = await self.next_step()
            if run.status == R.AWAITING_INPUT:
                return None  # the planner asked a question: the run waits, released
            if more and self.cancel.is_set():
                await committer.cancel_all({}, Batch(run.run_id))
                return None
            if more:
                return MORE
        if self.failure is None:
            await self._succeed(batch)
            return None
        self.scheduler.skip_unstarted(batch, self.failure)
        await committer.commit(batch)
        return self.failure

    async def _succeed(self, batch: Batch) -> None:
        """Every reachable step succeeded: the run succeeds in the same commit."""
        run = self.run
        for s in run.rollback:  # never needed: say so rather than leave them pending
            transition(batch, s, S.SKIPPED, reason="not needed: every step succeeded")
        self.scheduler.skip_unreachable(batch)
        batch.set_run(
            RunWrite(run.status, R.SUCCEEDED, "all steps succeeded"),
            EXECUTOR,
            RunStatusChanged(
                from_status=run.status, to_status=R.SUCCEEDED, reason="all steps succeeded"
            ),
        )
        await self.committer.commit(batch)
        run.status = R.SUCCEEDED
