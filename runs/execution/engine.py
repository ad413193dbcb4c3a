"""The executor: runs a plan's steps as a DAG, then rolls back or finishes the run.

Scheduling is event-driven, not layered: a step starts the moment its own
dependencies have succeeded and a concurrency slot is free. Everything the
executor knows is rebuilt from the database when it starts (``RunExecutor.load``),
so a run can stop in one process and continue in another.

The algorithm:
1. Load the run, its current plan's steps and their tools; a step left
   ``running`` by a dead worker is re-run only when its tool is idempotent,
   otherwise the run escalates ("may have partly run").
2. Loop: start ready steps (one commit records them ``running``), wait for any
   step to finish, record finishes together with the next starts in one commit.
   A step's tool starts once that commit is durable, unless the tool is idempotent:
   then it starts first (``_commit_starting``), and its row, like finishes of
   idempotent steps, commits when the loop goes idle (``_may_defer``).
3. On the first failure no new step starts; running steps finish; the rest are
   skipped; the plan's rollback steps run in order; the run ends
   ``rolled_back`` (or ``failed`` without rollback, or when a rollback step fails).
4. On cancel, running steps are cancelled (their processes killed) and every
   unfinished step and the run end ``cancelled``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from runs.evaluation.checks import FAIL, Verdict
from runs.events import RunStatusChanged, StepRetrying, StepVerdict, step_status_json
from runs.execution.budgets import Budgets, Usage, budgets_for, run_usage
from runs.execution.deadlines import Deadlines
from runs.execution.journal import Batch, Journal, RunWrite, StaleStateError, StepWrite
from runs.execution.loops import run_in_thread_loop
from runs.execution.planning_hooks import PlanningHooks
from runs.execution.supervision import (
    BUDGET_BREACHED,
    EVALUATOR_FAIL,
    GATE_ABORT,
    GATE_NEEDED,
    GATE_OPEN,
    GATE_RUN,
    PARTIAL_RUN,
    Supervision,
)
from runs.models import Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.planning.params import params_problems
from runs.planning.references import ReferenceResolutionError, find_references, resolve_references
from runs.publish import publisher
from runs.statemachine import check_step_transition
from runs.tools.base import ToolConfigError, ToolError, ToolSpec
from runs.tools.registry import invoke_tool

log = logging.getLogger(__name__)
R = RunStatus


class S:
    """``StepStatus`` values as plain class attributes of type ``str``.

    Looking up a member of the enum costs ~150 ns, ten times as much; the executor
    does it about ten times a step.
    """

    PENDING = StepStatus.PENDING.value
    RUNNING = StepStatus.RUNNING.value
    SUCCEEDED = StepStatus.SUCCEEDED.value
    FAILED = StepStatus.FAILED.value
    SKIPPED = StepStatus.SKIPPED.value
    CANCELLED = StepStatus.CANCELLED.value
    ROLLED_BACK = StepStatus.ROLLED_BACK.value


# Plain str, as in ``S``: an enum member is formatted into every event frame by a Python
# ``__format__`` and bound into every event row by sqlite3's slower adapter path.
EXECUTOR = TranscriptEvent.Role.EXECUTOR.value
SUPERVISOR = TranscriptEvent.Role.SUPERVISOR.value
EVALUATOR = TranscriptEvent.Role.EVALUATOR.value


@dataclass(slots=True)
class StepState:
    id: int
    key: str
    phase: str
    tool: ToolSpec | None
    tool_name: str
    params: Any
    depends_on: tuple[str, ...]
    status: str
    attempts: int
    result: Any
    error: str
    started_at: Any
    finished_at: Any
    has_refs: bool
    confidence: float | None = None
    gate: str | None = None  # None: not gated; else one of the GATE_* values


@dataclass(slots=True)
class Outcome:
    ok: bool
    result: Any = None
    error: str = ""
    verdict: Verdict | None = None
    result_json: str | None = None  # ``result`` as JSON, from the check that it serialises


class RunExecutor(Supervision, PlanningHooks):
    """Executes one run in the calling thread's event loop; see the module docstring.

    Supervision (verdicts, budgets, escalations, gates) and the planner hooks
    (replanning, iterative next steps) live in mixins of their own modules.
    """

    def __init__(self, run_id: int, *, lease_owner: str | None = None) -> None:
        self.run_id = run_id
        # The lease (from run_claim) this executor writes under; see Journal.fence.
        self.fence = lease_owner
        self.heartbeat_seconds = float(settings.PLANNERWEB_HEARTBEAT_SECONDS)
        self.backoff_seconds = float(settings.PLANNERWEB_RETRY_BACKOFF_SECONDS)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancel: asyncio.Event | None = None
        self._cancel_requested_early = False
        # While the main loop runs: commits the changes it holds back (see _may_defer).
        self._commit_deferred: Callable[[], None] | None = None
        # Why the supervisor stops the run instead of replanning: (cause, step id).
        self.stop: tuple[str, int | None] | None = None

    # -- loading (sync, ORM) -----------------------------------------------------
    def load(self) -> None:
        from runs.planning.iterative import task_is_iterative

        run = Run.objects.select_related("current_plan", "task").get(pk=self.run_id)
        self.status = run.status
        self.iterative = task_is_iterative(run.task)
        self.budgets: Budgets = budgets_for(run.task)
        self.budgeted = bool(self.budgets)  # read per step: a plain attribute, not __bool__
        # Usage is read only when a budget applies: no query for runs without one.
        self.usage = run_usage(self.run_id, run.started_at) if self.budgeted else Usage()
        if self.fence is None:
            self.fence = run.lease_owner
        self.max_parallel = max(1, run.max_parallel)
        self.cancel_by = run.cancel_requested_by.get_username() if run.cancel_requested_by else None
        self._cancel_requested_early = run.cancel_requested_at is not None
        steps = list(
            Step.objects.filter(plan_id=run.current_plan_id)
            .select_related("tool")
            .order_by("phase", "position")
        )
        specs: dict[int, ToolSpec] = {}
        self.main: list[StepState] = []
        self.rollback: list[StepState] = []
        for s in steps:
            spec = None
            if s.tool is not None:
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
            )
            (self.main if s.phase == Step.Phase.MAIN else self.rollback).append(state)
        self._load_gates()

    # -- entry point ---------------------------------------------------------------
    def execute(self) -> str:
        """Load and run to a stop; returns the run's final (or paused) status."""
        self.load()
        if self.status not in (R.EXECUTING, R.REPLANNING, R.ROLLING_BACK):
            return self.status
        with Journal(fence=self.fence) as self.journal:
            status = self.run_loaded()
        if status == _LOST:
            return Run.objects.values_list("status", flat=True).get(pk=self.run_id)
        return status

    def run_loaded(self) -> str:
        """Run the loaded run to a stop on this thread's kept loop; needs ``self.journal``."""
        return run_in_thread_loop(self._main())

    def request_cancel(self, by: str | None = None) -> None:
        """Thread-safe: stop this run as soon as possible (in-process fast path)."""
        self.cancel_by = by or self.cancel_by
        loop, event = self._loop, self._cancel
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)
        else:
            self._cancel_requested_early = True

    async def _main(self) -> str:
        self._loop = asyncio.get_running_loop()
        self._cancel = asyncio.Event()
        # Main-phase steps started and not yet recorded as finished, by key.
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._deadlines = Deadlines(self._loop)
        self._commit_lock = asyncio.Lock()
        if self._cancel_requested_early:
            self._cancel.set()
        _active[self.run_id] = self
        heartbeat = asyncio.create_task(self._heartbeat())
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
            heartbeat.cancel()
            self._deadlines.close()
            _active.pop(self.run_id, None)
            # Events committed on this loop's behalf must be sent before the loop closes.
            await publisher.flush()

    async def _phases(self) -> str:
        """Main steps, then (after a failure) the rollback; returns where the run stopped."""
        if self.status in (R.EXECUTING, R.REPLANNING):
            if self.status == R.EXECUTING:
                failure = await self._execute_main()
            else:  # the worker that was replanning died: replan again
                failure = self._first_failure_reason() or "replanning was interrupted"
            # Replanning hook: a new plan version, or give up. A budget breach never replans.
            while failure is not None and not (self.stop and self.stop[0] == BUDGET_BREACHED):
                adopted, failure = await self._replan(failure)
                if not adopted:
                    break
                failure = await self._execute_main()
            if failure is None:
                return self.status
            if self.stop is not None and self.stop[0] == EVALUATOR_FAIL:
                # Replans exhausted on an evaluator fail: a reviewer decides (retry, skip, edit,
                # roll back, abort); nothing is undone before they do.
                failed = next((s for s in self.main if s.id == self.stop[1]), None)
                await self._escalate(EVALUATOR_FAIL, failure, step=failed)
                return self.status
            escalate = self.stop[0] if self.stop is not None else None
            if not self.rollback:
                if escalate:
                    await self._escalate(escalate, failure)
                else:
                    await self._set_run(R.FAILED, failure)
                return self.status
            await self._set_run(R.ROLLING_BACK, f"rolling back after: {failure}")
        else:
            failure = self._first_failure_reason() or "resumed rollback"
            escalate = None
        await self._execute_rollback(failure, escalate=escalate)
        return self.status

    # -- main phase ---------------------------------------------------------------
    async def _execute_main(self) -> str | None:
        """Run the main steps; returns None when the run stopped or parked, else the failure reason."""
        by_key = {s.key: s for s in self.main}
        results: dict[str, Any] = {}
        dependents: dict[str, list[str]] = {s.key: [] for s in self.main}
        waiting: dict[str, int] = {}
        batch = Batch(self.run_id)
        failure: str | None = None
        self.stop = None

        for s in self.main:
            for dep in s.depends_on:
                dependents[dep].append(s.key)
        for s in self.main:
            if s.status == S.SUCCEEDED:
                results[s.key] = s.result
            elif s.status == S.RUNNING:
                # Left running by a worker that died: its side effects may be half done.
                if s.tool is not None and s.tool.idempotent:
                    self._step(batch, s, S.PENDING, reason="re-queued after a worker stopped")
                else:
                    await self._commit(batch)
                    await self._escalate(
                        PARTIAL_RUN,
                        f"step {s.key} may have partly run: its worker stopped while it was "
                        "running and its tool is not idempotent",
                        step=s,
                    )
                    return None
            elif s.status in (S.FAILED, S.CANCELLED) and failure is None:
                failure = f"step {s.key} {s.status}: {s.error}".rstrip(": ")
        if failure is None:
            # Skipped by a reviewer (or a gate): what needs them is skipped too.
            skipped = {s.key for s in self.main if s.status == S.SKIPPED}
            for s in self.main:  # positions are a topological order: deps come first
                if s.status != S.PENDING:
                    continue
                blocked = [d for d in s.depends_on if d in skipped] if skipped else None
                if blocked:
                    self._step(
                        batch, s, S.SKIPPED, reason=f"needs {', '.join(blocked)}, which was skipped"
                    )
                    skipped.add(s.key)
                    continue
                count = 0
                for d in s.depends_on:
                    if d not in results:  # results: the steps that succeeded
                        count += 1
                waiting[s.key] = count
            if self.budgeted:  # checked on (re)start and after every replan
                failure = self._over_budget(0)
        ready = deque(k for k, n in waiting.items() if n == 0)
        gated: dict[str, StepState] = {}

        # Finished steps; None: cancel requested; _IDLE: the loop has nothing else to run;
        # a StaleStateError: a step's retry could not commit.
        finished = _Inbox()
        running = self._running
        cancel_wait = asyncio.create_task(self._wait_cancel(finished))
        # Finishes that start nothing commit once the loop is idle (see _may_defer).
        when_idle = getattr(self._loop, "call_when_idle", None)
        idle_asked = idle_now = False
        deferred_since = 0.0
        # A non-idempotent step's finish commits at once: lost in a crash, it would need a
        # reviewer ("may have partly run"), where an idempotent step would just run again.
        strict_done = False
        # Changes made in memory and not yet written into ``batch``, in the order they
        # happened: finished steps, then starts (their rows, taken when they started).
        # Writing them (event text and all) waits until just before the commit, after
        # the starting steps' tools are running (``write_pending``).
        done_unwritten: list[tuple[StepState, Outcome]] = []
        starts_unwritten: list[tuple[StepState, StepWrite]] = []

        def write_pending() -> None:
            nonlocal strict_done
            strict_done = False
            for state, outcome in done_unwritten:
                self._finish(batch, state, outcome)
            done_unwritten.clear()
            for state, write in starts_unwritten:
                self._record(batch, state, write)
            starts_unwritten.clear()

        async def run_one(state: StepState, params: Any) -> None:
            try:
                outcome = await self._run_step(state, params)
            except StaleStateError as exc:  # a retry's commit found the run moved elsewhere
                finished.put(exc)
                return
            finished.put((state, outcome))

        def commit_deferred() -> None:
            """Commit what waits for the loop to go idle: a retry's commit comes after it."""
            nonlocal batch, deferred_since
            write_pending()
            if batch:
                self.journal.commit(batch)
                batch = Batch(self.run_id)
                deferred_since = 0.0

        self._commit_deferred = commit_deferred

        def release(key: str) -> None:
            for d in dependents[key]:
                waiting[d] -= 1
                if waiting[d] == 0:
                    ready.append(d)

        try:
            while True:
                starts: list[tuple[StepState, Any]] = []
                while failure is None and ready and len(running) + len(starts) < self.max_parallel:
                    state = by_key[ready.popleft()]
                    if state.gate is not None and state.gate != GATE_RUN:
                        if state.gate in (GATE_NEEDED, GATE_OPEN):
                            gated[state.key] = state  # waits; independent steps go on
                            continue
                        write_pending()
                        self._step(
                            batch, state, S.SKIPPED, reason=f"{state.gate} decided at its gate"
                        )
                        if state.gate == GATE_ABORT:
                            failure = f"step {state.key} was aborted at its gate"
                        continue
                    if self.budgeted:
                        breach = self._over_budget(1)
                        if breach is not None:
                            failure = breach
                            break
                        self.usage.steps += 1
                    try:
                        params = (
                            self._resolve_params(state, results) if state.has_refs else state.params
                        )
                    except ValueError as exc:
                        write_pending()
                        self._step(batch, state, S.RUNNING)
                        self._step(batch, state, S.FAILED, error=str(exc))
                        failure = f"step {state.key} failed: {exc}"
                        continue
                    starts_unwritten.append((state, self._change(batch, state, S.RUNNING)))
                    starts.append((state, params))
                if not (starts or running or gated):
                    write_pending()
                    break  # the last finishes commit together with how the run ends, below
                if idle_now or gated or strict_done or when_idle is None:
                    defer = False
                elif starts and not all(_may_start_early(state) for state, _ in starts):
                    defer = False  # write-ahead: their tools start once this commit is durable
                else:
                    if not deferred_since:
                        deferred_since = self._loop.time()  # type: ignore[union-attr]
                    defer = _may_defer(
                        len(batch.steps) + len(done_unwritten) + len(starts_unwritten),
                        self._loop.time() - deferred_since,  # type: ignore[union-attr]
                    )
                if defer:
                    if starts:  # idempotent: their tools start now, their rows commit later
                        await self._commit_starting(
                            batch,
                            starts,
                            lambda group: self._start_tasks(group, run_one),
                            write=write_pending,
                            commit=False,
                        )
                        batch.restamp()
                    if not idle_asked:
                        when_idle(lambda: finished.put(_IDLE))  # type: ignore[misc]
                        idle_asked = True
                else:
                    await self._commit_starting(
                        batch,
                        starts,
                        lambda group: self._start_tasks(group, run_one),
                        write=write_pending,
                    )
                    batch = Batch(self.run_id)
                    idle_now, deferred_since = False, 0.0
                if any(g.gate == GATE_NEEDED for g in gated.values()):
                    await self._open_gates(list(gated.values()))
                if not running:
                    if failure is None and gated and not self._cancel.is_set():  # type: ignore[union-attr]
                        decided = await self._park(list(gated.values()))
                        if decided is None:
                            return None  # parked: the run waits for a reviewer, holding nothing
                        for state in decided:
                            del gated[state.key]
                            ready.append(state.key)
                        continue
                    break

                items = await finished.take()
                if gated:  # a reviewer may have decided while other steps ran
                    for state in await self._gate_decisions(list(gated.values())):
                        del gated[state.key]
                        ready.append(state.key)
                for item in items:
                    if item is None:  # cancel requested; record what already finished first
                        continue
                    if item is _IDLE:
                        idle_asked, idle_now = False, True
                        continue
                    if isinstance(item, StaleStateError):
                        raise item  # the run is lost to us (see _main)
                    state, outcome = item
                    del running[state.key]
                    done_unwritten.append((state, outcome))
                    strict_done = strict_done or not _may_start_early(state)
                    if outcome.ok:
                        results[state.key] = outcome.result
                        release(state.key)
                    elif failure is None:
                        if outcome.verdict is not None and outcome.verdict.status == FAIL:
                            self.stop = (EVALUATOR_FAIL, state.id)
                            failure = (
                                f"step {state.key} failed the evaluator: {outcome.verdict.reason}"
                            )
                        else:
                            failure = f"step {state.key} failed: {outcome.error}"
                if None in items:
                    write_pending()
                    await self._cancel_all(running, batch)
                    return None
        finally:
            cancel_wait.cancel()
            self._commit_deferred = None

        if self._cancel.is_set():  # type: ignore[union-attr]
            await self._cancel_all(running, batch)
            return None
        if failure is None and self.iterative:  # hook: the planner decides what comes next
            await self._commit(batch)  # the planner reads the finished steps
            batch = Batch(self.run_id)
            more, failure = await self._next_step()
            if more and self._cancel.is_set():  # type: ignore[union-attr]
                await self._cancel_all({}, Batch(self.run_id))
                return None
            if more:
                return await self._execute_main()
        if failure is None:
            for s in self.rollback:  # never needed: say so rather than leave them pending
                self._step(batch, s, S.SKIPPED, reason="not needed: every step succeeded")
            for s in self.main:  # behind a skipped gate: never reachable
                if s.status == S.PENDING:
                    self._step(batch, s, S.SKIPPED, reason="needs a step that was skipped")
            batch.set_run(
                RunWrite(self.status, R.SUCCEEDED, "all steps succeeded"),
                EXECUTOR,
                RunStatusChanged(
                    from_status=self.status, to_status=R.SUCCEEDED, reason="all steps succeeded"
                ),
            )
            await self._commit(batch)
            self.status = R.SUCCEEDED
            return None
        self._skip_unstarted(batch, failure)
        await self._commit(batch)
        return failure

    async def _commit_starting(
        self,
        batch: Batch,
        starts: list[tuple[StepState, Any]],
        start: Callable[[list[tuple[StepState, Any]]], list[asyncio.Task[Any]]],
        *,
        write: Callable[[], None] | None = None,
        commit: bool = True,
    ) -> list[asyncio.Task[Any]]:
        """Commit ``batch``, which records ``starts`` running, and ``start`` their tools.

        Write-ahead: a tool starts once its step's ``running`` row is durable, so a
        worker that dies during the call leaves the step ``running``, and only an
        idempotent tool is ever called again for it. An idempotent step needs no
        such order: if the worker dies before the commit, the step is still
        ``pending`` and runs again, which its tool allows. So idempotent steps start
        first, and their tools work during the commit instead of after it (the commit
        leaves the critical path: 0.3-2 ms per level of the plan on SQLite, more on
        PostgreSQL). Their events are still committed before anything they finish.
        ``write`` puts changes kept in memory into ``batch`` once those tools run;
        ``commit=False`` (only idempotent ``starts``) leaves ``batch`` to a later commit.
        """
        early: list[tuple[StepState, Any]] = []
        late: list[tuple[StepState, Any]] = []
        for item in starts:
            (early if _may_start_early(item[0]) else late).append(item)
        tasks: list[asyncio.Task[Any]] = []
        async with self._commit_lock:  # a retry's commit (from a step task) waits for this one
            if early:
                tasks += start(early)
                await asyncio.sleep(0)  # each reaches its tool's first wait before the commit
            if write is not None:
                write()
            if commit and batch:
                try:
                    self.journal.commit(batch)
                except BaseException:  # nothing was written: stop the tools started early
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise
        if late:
            tasks += start(late)
        return tasks

    def _start_tasks(
        self, starts: list[tuple[StepState, Any]], run_one: Any
    ) -> list[asyncio.Task[Any]]:
        """Start main steps; those sharing a timeout share one deadline (``deadlines``)."""
        create_task = self._loop.create_task  # type: ignore[union-attr]
        running = self._running
        by_timeout: dict[float, list[asyncio.Task[Any]]] = {}
        started = []
        for state, params in starts:
            task = running[state.key] = create_task(run_one(state, params))
            started.append(task)
            if state.tool is not None:
                by_timeout.setdefault(state.tool.timeout_seconds, []).append(task)
        for seconds, tasks in by_timeout.items():
            self._deadlines.arm(tasks, seconds)
        return started

    def _skip_unstarted(self, batch: Batch, failure: str) -> None:
        """Skip every step that did not start, saying whether it needed a failed step."""
        bad = {s.key for s in self.main if s.status in (S.FAILED, S.SKIPPED, S.CANCELLED)}
        for s in self.main:  # positions are a topological order: deps come first
            if s.status != S.PENDING:
                continue
            blocked = [d for d in s.depends_on if d in bad]
            if blocked:
                reason = f"needs {', '.join(blocked)}, which did not succeed"
            else:
                reason = f"not started: the run stopped ({failure})"
            self._step(batch, s, S.SKIPPED, reason=reason)
            bad.add(s.key)

    async def _run_step(self, state: StepState, params: Any) -> Outcome:
        """Call the tool with timeout and retries; never raises except on cancellation."""
        spec = state.tool
        if spec is None or not spec.enabled:
            return Outcome(False, error=f"tool {state.tool_name!r} is missing or disabled")
        max_attempts = 1 + (spec.max_retries if spec.idempotent else 0)
        deadlines = self._deadlines
        task = asyncio.current_task()
        assert task is not None  # steps run in tasks of their own
        while True:
            if not deadlines.is_armed(task):
                deadlines.arm((task,), spec.timeout_seconds)
            try:
                result = await invoke_tool(spec, params)
            except asyncio.CancelledError:
                if not deadlines.expired(task):
                    deadlines.disarm(task)
                    raise  # cancelled: the run stops
                error = f"timed out after {spec.timeout_seconds:g}s"
                retryable = True
            except ToolConfigError as exc:
                error, retryable = exc.message, False
            except ToolError as exc:
                error, retryable = exc.message, True
            except Exception as exc:  # a broken tool must fail its step, not the executor
                log.exception("tool %s raised", spec.name)
                error, retryable = f"{type(exc).__name__}: {exc}", True
            else:
                deadlines.disarm(task)
                try:
                    # The result is stored and shown: it must be JSON (NaN and Infinity are not).
                    text = _to_json(result)
                except (TypeError, ValueError) as exc:
                    return Outcome(False, error=f"tool returned a result that is not JSON: {exc}")
                if not spec.checks:
                    return Outcome(True, result=result, result_json=text)
                verdict = await self._evaluate(state, spec, result)
                if verdict.status == FAIL:
                    return Outcome(
                        False,
                        result=result,
                        error=f"evaluator: {verdict.reason}",
                        verdict=verdict,
                        result_json=text,
                    )
                return Outcome(True, result=result, verdict=verdict, result_json=text)
            deadlines.disarm(task)
            if not retryable or state.attempts >= max_attempts:
                return Outcome(False, error=error)
            delay = min(self.backoff_seconds * 2 ** (state.attempts - 1), 60.0)
            batch = Batch(self.run_id)
            attempt = state.attempts + 1
            batch.events.append(
                (
                    EXECUTOR,
                    StepRetrying(
                        step_id=state.id,
                        step=state.key,
                        attempt=attempt,
                        delay_seconds=delay,
                        error=error,
                    ),
                )
            )
            self._step(batch, state, S.RUNNING, error=error, attempts=attempt, quiet=True)
            async with self._commit_lock:
                if self._commit_deferred is not None:  # this step's start may be among them
                    self._commit_deferred()
                self.journal.commit(batch)
            await asyncio.sleep(delay)

    def _resolve_params(self, state: StepState, results: dict[str, Any]) -> Any:
        """The params of a step whose params hold references, with those resolved and checked."""
        try:
            params = resolve_references(state.params, results, step=state.key)
        except ReferenceResolutionError as exc:
            raise ValueError(f"cannot resolve params: {exc}") from exc
        if state.tool is not None and state.tool.parameters_schema:
            # The compiled check is cached per schema; the resolved params hold no references.
            problems = sorted(
                params_problems(state.tool.parameters_schema, params, allow_references=False),
                key=lambda p: list(p.location),
            )
            if problems:
                detail = "; ".join(
                    f"{'.'.join(map(str, p.location)) or 'params'}: {p.message}" for p in problems
                )
                raise ValueError(f"params after resolving references are invalid: {detail}")
        return params

    # -- rollback -----------------------------------------------------------------
    async def _execute_rollback(self, failure: str, *, escalate: str | None = None) -> None:
        """Run the rollback steps in order; the run ends rolled back, or escalated with ``escalate``."""
        for state in self.rollback:
            if state.status == S.SUCCEEDED:
                continue
            if self._cancel.is_set():  # type: ignore[union-attr]
                await self._cancel_all({}, Batch(self.run_id))
                return
            batch = Batch(self.run_id)
            if state.status == S.RUNNING and not (state.tool and state.tool.idempotent):
                await self._escalate(
                    PARTIAL_RUN,
                    f"rollback step {state.key} may have partly run: its worker stopped "
                    "while it was running and its tool is not idempotent",
                    step=state,
                )
                return
            if state.status == S.PENDING:
                self._step(batch, state, S.RUNNING)
            (task,) = await self._commit_starting(
                batch,
                [(state, state.params)],
                lambda group: [asyncio.create_task(self._run_step(s, p)) for s, p in group],
            )
            cancel_wait = asyncio.create_task(self._cancel.wait())  # type: ignore[union-attr]
            done, _ = await asyncio.wait({task, cancel_wait}, return_when=asyncio.FIRST_COMPLETED)
            cancel_wait.cancel()
            if task not in done:
                await self._cancel_all({state.key: task}, Batch(self.run_id))
                return
            outcome = task.result()
            batch = Batch(self.run_id)
            self._finish(batch, state, outcome)
            if outcome.ok:
                await self._commit(batch)
                continue
            for later in self.rollback:
                if later.status == S.PENDING:
                    self._step(batch, later, S.SKIPPED, reason=f"rollback stopped at {state.key}")
            await self._commit(batch)
            await self._set_run(
                R.FAILED,
                f"{failure}; rollback step {state.key} ({state.tool_name}) failed: {outcome.error}",
            )
            return
        batch = Batch(self.run_id)
        undone = [s for s in self.main if s.status == S.SUCCEEDED]
        for s in undone:
            self._step(batch, s, S.ROLLED_BACK, reason="undone by the plan's rollback")
        await self._commit(batch)
        reason = f"{failure}; rolled back ({len(self.rollback)} rollback step(s) ran)"
        if escalate:
            await self._escalate(escalate, reason)
        else:
            await self._set_run(R.ROLLED_BACK, reason)

    def _first_failure_reason(self) -> str:
        for s in self.main:
            if s.status == S.FAILED:
                return f"step {s.key} failed: {s.error}"
        return ""

    # -- cancellation and heartbeat ---------------------------------------------------
    async def _wait_cancel(self, finished: _Inbox) -> None:
        await self._cancel.wait()  # type: ignore[union-attr]
        finished.put(None)

    async def _cancel_all(self, running: dict[str, asyncio.Task[Any]], batch: Batch) -> None:
        for task in running.values():
            task.cancel()
        # Wait for the kinds to kill their processes before saying "cancelled".
        await asyncio.gather(*running.values(), return_exceptions=True)
        reason = f"cancelled by {self.cancel_by}" if self.cancel_by else "cancelled"
        for s in (*self.main, *self.rollback):
            if s.status in (S.PENDING, S.RUNNING):
                self._step(batch, s, S.CANCELLED, reason=reason)
        batch.set_run(
            RunWrite(self.status, R.CANCELLED, reason),
            SUPERVISOR,
            RunStatusChanged(from_status=self.status, to_status=R.CANCELLED, reason=reason),
        )
        await self._commit(batch)
        self.status = R.CANCELLED

    async def _heartbeat(self) -> None:
        """Renew the lease and notice cancel requests made in other processes."""
        seconds = self.heartbeat_seconds
        while True:
            await asyncio.sleep(seconds)
            try:
                requested_at, by, owner = self.journal.heartbeat(
                    self.run_id, timezone.now() + timedelta(seconds=seconds * 5)
                )
            except Exception:
                log.exception("heartbeat of run %s failed", self.run_id)
                continue
            if owner != self.fence:
                # Our lease lapsed and another worker took the run: stop our tools now.
                # The cancel path's commit then fails the fence check, so nothing is written.
                log.warning("run %s: lease lost to %r; stopping", self.run_id, owner)
                self._cancel.set()  # type: ignore[union-attr]
                return
            if requested_at is not None:
                self.cancel_by = by
                self._cancel.set()  # type: ignore[union-attr]

    # -- writes ---------------------------------------------------------------------
    async def _commit(self, batch: Batch) -> list[int]:
        """Commit inline on this loop (see ``runs.execution.journal`` for why not a thread).

        Measured: committing beside the loop in a helper thread while siblings run
        was no faster on the target machine (GIL contention ate the overlap).
        """
        if not batch:
            return []
        async with self._commit_lock:  # retries commit from step tasks: one transaction at a time
            return self.journal.commit(batch)

    def _step(
        self,
        batch: Batch,
        state: StepState,
        to: str,
        *,
        result: Any = None,
        error: str = "",
        reason: str = "",
        attempts: int | None = None,
        quiet: bool = False,
        verdict: Verdict | None = None,
        result_json: str | None = None,
    ) -> None:
        """Record a step transition in ``batch`` and mirror it in memory."""
        write = self._change(
            batch,
            state,
            to,
            result=result,
            error=error,
            attempts=attempts,
            verdict=verdict,
            result_json=result_json,
        )
        if quiet:  # a retry: the row changes, the retry event (already queued) tells the story
            check_step_transition(write.expect, to, what=f"step {state.key!r}")
            batch.steps.append(write)
        else:
            shown = result is not None and to in _SHOWS_RESULT
            self._record(
                batch,
                state,
                write,
                result_json=(result_json or _to_json(result)) if shown else "null",
                error=error,
                reason=reason,
            )

    def _change(
        self,
        batch: Batch,
        state: StepState,
        to: str,
        *,
        result: Any = None,
        error: str = "",
        attempts: int | None = None,
        verdict: Verdict | None = None,
        result_json: str | None = None,
    ) -> StepWrite:
        """Make a step transition in memory; returns its row, which ``_record`` writes."""
        now = batch.stamp()
        previous = state.status
        if to == S.RUNNING and previous == S.PENDING:
            state.attempts += 1
            state.started_at = now
        if attempts is not None:
            state.attempts = attempts
        if to in _FINISHED:
            state.finished_at = now
        if to == S.SUCCEEDED or result is not None:
            state.result = result
        if error or to == S.FAILED:
            state.error = error
        if to == S.PENDING:
            state.started_at = None
        state.status = to
        # Positional, in StepWrite's field order: keywords cost a dict and ~0.5 µs, twice a step.
        return StepWrite(
            state.id,  # step_id
            previous,  # expect
            to,  # status
            state.attempts,
            state.result,
            state.error,
            state.started_at,
            state.finished_at,
            (verdict.status, verdict.reason) if verdict is not None else None,  # verdict
            result_json if result is not None else None,  # result_json
        )

    def _record(
        self,
        batch: Batch,
        state: StepState,
        write: StepWrite,
        *,
        result_json: str = "null",
        error: str = "",
        reason: str = "",
    ) -> None:
        """Put a row made by ``_change`` into ``batch``, with its ``step.status`` event."""
        batch.add_step(
            write,
            EXECUTOR,
            step_status_json(
                step_id=state.id,
                step=state.key,
                phase=state.phase,
                from_status=write.expect,
                to_status=write.status,
                attempt=write.attempts,
                result_json=result_json,
                error=error,
                reason=reason,
            ),
        )

    def _finish(self, batch: Batch, state: StepState, outcome: Outcome) -> None:
        """Record a finished call: the evaluator's verdict (if any) and the step's new status."""
        verdict = outcome.verdict
        if verdict is not None:
            batch.events.append(
                (
                    EVALUATOR,
                    StepVerdict(
                        step_id=state.id,
                        step=state.key,
                        status=verdict.status,
                        reason=verdict.reason,
                        check=verdict.check,
                    ),
                )
            )
        if outcome.ok:
            self._step(
                batch,
                state,
                S.SUCCEEDED,
                result=outcome.result,
                verdict=verdict,
                result_json=outcome.result_json,
            )
        else:
            self._step(
                batch,
                state,
                S.FAILED,
                result=outcome.result,
                error=outcome.error,
                verdict=verdict,
                result_json=outcome.result_json,
            )

    async def _set_run(self, to: str, reason: str) -> None:
        batch = Batch(self.run_id)
        batch.set_run(
            RunWrite(self.status, to, reason),
            SUPERVISOR if to in (R.ESCALATED, R.FAILED) else EXECUTOR,
            RunStatusChanged(from_status=self.status, to_status=to, reason=reason),
        )
        await self._commit(batch)
        self.status = to


class _Inbox:
    """What step tasks hand the executor's main loop: finishes, and the cancel and idle marks.

    ``asyncio.Queue`` does more per item than this needs (sizes, a join count, an
    Event, waiting putters), and the main loop takes everything at once anyway.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
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


def _may_defer(rows: int, age: float) -> bool:
    """Whether a batch of ``rows`` changes of idempotent steps may wait for the loop to go idle.

    Nothing waits on such a commit but durability, while other steps' finishes,
    due the same moment, wait on the loop: when 98 parallel steps end together,
    committing the first ones delayed the last ones, and the step that needs them
    all, by the commits' 3-5 ms; in a chain of quick steps, a commit per step was
    two thirds of each step's cost. So they commit once the loop has nothing else
    to run (``loops.ExecutorEventLoop.call_when_idle``: a tool waiting on I/O),
    or with a non-idempotent step's start, and never later than a few
    milliseconds or a few hundred rows on. Their events are published only after
    that commit, so nobody has been told of a change a crash could still lose;
    and only idempotent steps wait (``strict_done``, write-ahead starts), since
    those just run again if a crash loses them.
    """
    return rows < _DEFER_ROWS and age < _DEFER_SECONDS


def _may_start_early(state: StepState) -> bool:
    """Whether the step's tool may start before its ``running`` row commits (``_commit_starting``)."""
    return state.tool is not None and state.tool.idempotent


_LOST = "lost"  # the run's state changed under us; execute() re-reads it
_IDLE = object()  # queued by the loop's idle callback: commit what waits for it
_DEFER_ROWS = 400
_DEFER_SECONDS = 0.005
# The transitions whose event carries the step's result, and those that end a step.
_SHOWS_RESULT = frozenset({S.SUCCEEDED, S.FAILED})
_FINISHED = frozenset({S.SUCCEEDED, S.FAILED, S.SKIPPED, S.CANCELLED})
# json.dumps with a non-default option builds an encoder per call: keep one.
_to_json = json.JSONEncoder(allow_nan=False).encode

# Executors running in this process, for the in-process cancel fast path.
_active: dict[int, RunExecutor] = {}


def notify_cancel(run_id: int, by: str | None = None) -> None:
    """Tell an executor in this process to stop now (other processes notice on heartbeat)."""
    executor = _active.get(run_id)
    if executor is not None:
        executor.request_cancel(by)
