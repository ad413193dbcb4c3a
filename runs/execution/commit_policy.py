"""When the executor's changes commit: write-ahead for non-idempotent starts, at idle for the rest.

Write-ahead: a tool starts once its step's ``running`` row is durable, so a
worker that dies during the call leaves the step ``running``, and only an
idempotent tool is ever called again for it. An idempotent step needs no such
order: if the worker dies before the commit, the step is still ``pending`` and
runs again, which its tool allows. So idempotent steps start first, and their
tools work during the commit instead of after it (the commit leaves the
critical path: 0.3-2 ms per level of the plan on SQLite, more on PostgreSQL).
Their rows, like finishes, may then wait until the loop goes idle (``may_defer``).

When many write-ahead steps start together (``may_announce``), the commit in front
of their tools holds their ids as the run's intent (``Run.starting``) instead of
their rows and events: one row against a hundred and their transcript lines, the
larger part of that commit (98 starts behind one root: 3-5 ms on PostgreSQL against
1-2). Their rows and events follow once the loop goes idle, while the tools run,
and that commit clears the intent. A worker that takes the run over records the
steps it names as started, before anything else (``MainPhase``): what a crash
leaves behind is the same as if their rows had been in, so only a tool that allows
it is ever called again.

When many steps finish before write-ahead starts (a fan-in, ``may_hold``), the
commit in front of those starts may hold its whole batch as one document in the
run's row (PostgreSQL): the run's next write, at idle while the tools run, applies
its rows and events first, and a worker taking the run over applies it before
reading the run, so nothing reads the run as if the batch had not committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from runs.execution.journal import Batch, StepWrite
from runs.execution.steps import Outcome, StepState, finish, record
from runs.execution.writes import Committer
from runs.tools.kinds.agent import KIND as AGENT

DEFER_ROWS = 400
DEFER_SECONDS = 0.005
# Write-ahead starts in one round from which they commit as an intent (``may_announce``).
ANNOUNCE_STARTS = 8
# Step changes in a write-ahead commit from which it may be held as one document (``may_hold``).
HOLD_ROWS = 8

Starts = list[tuple[StepState, Any]]  # steps about to start, with their resolved params
StartTools = Callable[[Starts], list[asyncio.Task[Any]]]


def may_defer(rows: int, age: float) -> bool:
    """Whether a batch of ``rows`` changes of idempotent steps may wait for the loop to go idle.

    Nothing waits on such a commit but durability, while other steps' finishes,
    due the same moment, wait on the loop: when 98 parallel steps end together,
    committing the first ones delayed the last ones, and the step that needs them
    all, by the commits' 3-5 ms; in a chain of quick steps, a commit per step was
    two thirds of each step's cost. So they commit once the loop has nothing else
    to run (``loops.ExecutorEventLoop.call_when_idle``: a tool waiting on I/O),
    or with a non-idempotent step's start, and never later than a few
    milliseconds or a few hundred rows on. Their events are published only after
    that commit, so nobody has been told of a change a crash could still lose.

    A non-idempotent step's finish waits the same way. Committed at once, the
    first of 98 finishes due together held the loop for its commit while the
    others waited behind it, then the next ones did the same: three or four
    commits on the critical path where one does (PostgreSQL, wide-100: 1.27 times
    the critical path). A crash inside that wait leaves the step ``running``, as a
    crash during its call does: the takeover calls it again only when its tool
    honours idempotency keys, and otherwise asks a reviewer, so nothing runs twice.
    Starts never wait: a non-idempotent tool is called once its row is durable.
    """
    return rows < DEFER_ROWS and age < DEFER_SECONDS


def may_announce(starts: Starts) -> list[int] | None:
    """The ids of this round's write-ahead starts, when they may commit as an intent; else None.

    Only for many at once: for a few, their rows cost about what the intent does,
    and the intent adds a commit. A pool's step needs its row with its pool row, and
    an agent's its row for the takeover to read which of its inner calls are in doubt.
    """
    ids = []
    for state, _ in starts:
        if _needs_row(state):
            return None
        if not state.tool.idempotent:  # type: ignore[union-attr]
            ids.append(state.id)
    return ids if len(ids) >= ANNOUNCE_STARTS else None


def may_hold(batch: Batch, starts: Starts) -> bool:
    """Whether the commit in front of write-ahead ``starts`` may hold ``batch`` as one document.

    When many steps finished together (a fan-in: 98 finishes and the sink's start),
    their rows and events were most of that commit, on the critical path (2-3 ms
    of 3-5 on PostgreSQL, against 0.4-0.8 ms for one document). Held, they are
    applied by the run's next write, in its transaction and before its own rows,
    while the started tools run; a worker taking the run over applies them before it
    reads the run. So what is durable before a tool is called is unchanged. Never a
    batch that moves the run, nor in front of a step that needs its row at once (as
    for the intent: a pool's step, an agent's), nor when no tool waits for it.
    """
    if not starts or batch.run is not None or len(batch.steps) < HOLD_ROWS:
        return False
    return not any(_needs_row(state) for state, _ in starts)


def _needs_row(state: StepState) -> bool:
    """Whether a started step's row must be in the database as its tool starts (``may_announce``)."""
    tool = state.tool
    return tool is None or bool(tool.queue) or tool.kind == AGENT


def may_start_early(state: StepState) -> bool:
    """Whether the step's tool may start before its ``running`` row commits (``commit_starting``)."""
    # A pool's step starts write-ahead: a run taken over finds it ``running`` and its pool row.
    return state.tool is not None and state.tool.idempotent and not state.tool.queue


async def commit_starting(
    committer: Committer,
    batch: Batch,
    starts: Starts,
    start: StartTools,
    *,
    write: Callable[[], None] | None = None,
    commit: bool = True,
    hold: bool = False,
) -> list[asyncio.Task[Any]]:
    """Commit ``batch``, which records ``starts`` running, and ``start`` their tools.

    Idempotent steps start before the commit, the others once it is durable (see
    the module docstring); events are still committed before anything they
    finish. ``write`` puts changes kept in memory into ``batch`` once those tools
    run; ``commit=False`` (only idempotent ``starts``) leaves ``batch`` to a later commit;
    ``hold``: the batch may be held (``may_hold``), and the caller sees to its next write.
    """
    early: Starts = []
    late: Starts = []
    for item in starts:
        tool = item[0].tool  # may_start_early, inlined: this runs for every step
        (early if tool is not None and tool.idempotent and not tool.queue else late).append(item)
    tasks: list[asyncio.Task[Any]] = []
    async with committer.lock:  # a retry's commit (from a step task) waits for this one
        if early:
            tasks += start(early)
            await asyncio.sleep(0)  # each reaches its tool's first wait before the commit
        if write is not None:
            write()
        if commit and batch:
            batch.hold = hold and may_hold(batch, late)
            try:
                await committer.journal.commit_async(batch)
            except BaseException:  # nothing was written: stop the tools started early
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
    if late:
        tasks += start(late)
    return tasks


class PendingWrites:
    """The main loop's open batch, the changes it holds in memory, and when they commit.

    Finishes and starts are kept in memory, in the order they happened, and
    written into the batch (event text and all) just before it commits, after
    the starting steps' tools are running (``write``).
    """

    __slots__ = (
        "_time",
        "batch",
        "committer",
        "deferred_since",
        "done",
        "idle_asked",
        "idle_now",
        "run_id",
        "starts",
        "when_idle",
    )

    def __init__(self, run_id: int, committer: Committer, loop: asyncio.AbstractEventLoop) -> None:
        self.run_id = run_id
        self.committer = committer
        self._time = loop.time
        self.batch = Batch(run_id)
        self.done: list[tuple[StepState, Outcome]] = []
        self.starts: list[tuple[StepState, StepWrite]] = []
        # Finishes that start nothing commit once the loop is idle (see may_defer).
        self.when_idle: Callable[[Callable[[], None]], None] | None = getattr(
            loop, "call_when_idle", None
        )
        self.idle_asked = self.idle_now = False
        self.deferred_since = 0.0

    def started(self, state: StepState, write: StepWrite) -> None:
        """Hold a start (its row taken when it started) until the next ``write``."""
        self.starts.append((state, write))

    def finished(self, state: StepState, outcome: Outcome) -> None:
        """Hold a finish until the next ``write``."""
        self.done.append((state, outcome))

    def went_idle(self) -> None:
        """The loop's idle callback ran: the next commit happens at once."""
        self.idle_asked, self.idle_now = False, True

    def write(self) -> None:
        """Write the held finishes, then the held starts, into the batch."""
        batch = self.batch
        for state, outcome in self.done:
            finish(batch, state, outcome)
        self.done.clear()
        for state, write in self.starts:
            record(batch, state, write)
        self.starts.clear()

    def take(self) -> Batch:
        """What waits for the loop to go idle, as a batch to commit now (under the committer's lock)."""
        self.write()
        batch = self.batch
        if batch:
            self.batch = Batch(self.run_id)
            self.deferred_since = 0.0
        return batch

    def should_defer(self, starts: Starts, *, gated: bool) -> bool:
        """Whether this round's changes may wait for the loop to go idle (see ``may_defer``)."""
        if self.idle_now or gated or self.when_idle is None:
            return False
        for state, _ in starts:  # may_start_early, inlined: this runs for every step
            if state.tool is None or not state.tool.idempotent or state.tool.queue:
                return False  # write-ahead: their tools start once this commit is durable
        if not self.deferred_since:
            self.deferred_since = self._time()
        rows = len(self.batch.steps) + len(self.done) + len(self.starts)
        return may_defer(rows, self._time() - self.deferred_since)

    async def commit(
        self, starts: Starts, start: StartTools, on_idle: Callable[[], None], *, gated: bool
    ) -> None:
        """Start ``starts`` and commit this round's changes now, or ask to be told at idle."""
        if self.should_defer(starts, gated=gated):
            if starts:  # idempotent: their tools start now, their rows commit later
                await commit_starting(
                    self.committer, self.batch, starts, start, write=self.write, commit=False
                )
                self.batch.restamp()
            else:
                # Nothing starts: the loop would only wait for the next finish, so their
                # rows and events are written now rather than in front of the commit that
                # starts what depends on them (98 finishes: 0.4-0.5 ms of a fan-in's path).
                self.write()
            self._ask_idle(on_idle)
            return
        announced = None if gated or self.when_idle is None else may_announce(starts)
        if announced is not None:
            await self._commit_intent(announced)
            start(starts)
            # Each reaches its tool's first wait before their rows are written (a
            # commit that takes the batch meanwhile writes them itself, ``take``).
            await asyncio.sleep(0)
            self.write()
            self.batch.restamp()
            self.deferred_since = self._time()
            self._ask_idle(on_idle)
            return
        batch = self.batch
        await commit_starting(
            self.committer, batch, starts, start, write=self.write, hold=self._may_hold()
        )
        self.batch = Batch(self.run_id)
        self.idle_now, self.deferred_since = False, 0.0
        if batch.hold:  # applied by the next write: at idle, while the started tools run
            self.batch.flush = True
            self.deferred_since = self._time()
            self._ask_idle(on_idle)

    def _may_hold(self) -> bool:
        """Whether this run's commits may be held: the journal can, and idle comes to apply them."""
        return self.when_idle is not None and self.committer.journal.holds

    async def _commit_intent(self, announced: list[int]) -> None:
        """Commit what is held, this round's starts only as their ids (the run's intent).

        Their rows go into the next batch, which clears the intent whichever way it
        commits (at idle, with a retry, a cancel or the run's end).
        """
        # Under the lock: a retry's commit (from a step task) takes the batch and writes
        # the held starts (``take``); it must not, until the intent is in.
        async with self.committer.lock:
            starts, self.starts = self.starts, []
            try:
                self.write()
                self.batch.starting = announced
                # Held, the next batch (which clears the intent) applies it.
                self.batch.hold = self._may_hold() and may_hold(self.batch, starts)
                await self.committer.journal.commit_async(self.batch)
            finally:
                self.starts = starts
            self.batch = Batch(self.run_id, starting=[])
        self.idle_now = False

    def _ask_idle(self, on_idle: Callable[[], None]) -> None:
        if not self.idle_asked:
            self.when_idle(on_idle)  # type: ignore[misc]
            self.idle_asked = True
