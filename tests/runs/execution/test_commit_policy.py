"""The commit policy: write-ahead for non-idempotent starts, idle commits for idempotent changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from runs.events import RunStatusChanged
from runs.execution.commit_policy import (
    ANNOUNCE_STARTS,
    DEFER_ROWS,
    DEFER_SECONDS,
    HOLD_ROWS,
    PendingWrites,
    Starts,
    commit_starting,
    may_announce,
    may_defer,
    may_hold,
    may_start_early,
)
from runs.execution.journal import Batch, RunWrite
from runs.execution.steps import Outcome, StepState, change, transition
from runs.models import StepStatus
from runs.tools.base import ToolSpec
from tests.runs.execution.units import KeptJournal, committer, step, tool


class IdleLoop:
    """Just what ``PendingWrites`` asks of the executor's loop: a clock and idle callbacks."""

    def __init__(self) -> None:
        self.now = 100.0
        self.idle_callbacks: list[Callable[[], None]] = []

    def time(self) -> float:
        return self.now

    def call_when_idle(self, callback: Callable[[], None]) -> None:
        self.idle_callbacks.append(callback)


class PlainLoop:
    """A loop without idle callbacks (the default asyncio loop): nothing may wait for idle."""

    def time(self) -> float:
        return 0.0


def _pending(loop: Any = None) -> tuple[PendingWrites, KeptJournal]:
    c, journal = committer()
    return PendingWrites(1, c, loop or IdleLoop()), journal


def _started(pending: PendingWrites, *states: StepState) -> Starts:
    for s in states:
        pending.started(s, change(pending.batch, s, StepStatus.RUNNING))
    return [(s, {}) for s in states]


def test_idempotent_changes_wait_a_few_milliseconds_or_a_few_hundred_rows_at_most() -> None:
    assert may_defer(0, 0.0)
    assert not may_defer(DEFER_ROWS, 0.0)
    assert not may_defer(1, DEFER_SECONDS)


def test_only_an_idempotent_tool_starts_before_its_row_is_durable() -> None:
    assert may_start_early(step("a", spec=tool(idempotent=True)))
    assert not may_start_early(step("a", spec=tool(idempotent=False)))
    missing = step("a")
    missing.tool = None
    assert not may_start_early(missing)


def test_write_ahead_starts_idempotent_tools_before_the_commit_and_the_others_after() -> None:
    order: list[str] = []

    async def main() -> None:
        c, journal = committer()
        journal.commit = lambda batch: order.append("commit") or []  # type: ignore[method-assign]
        early, late = step("early"), step("late", spec=tool(idempotent=False))
        batch = Batch(1)
        transition(batch, early, StepStatus.RUNNING)

        def start(group: Starts) -> list[asyncio.Task[Any]]:
            order.extend(f"start {s.key}" for s, _ in group)
            return [asyncio.create_task(asyncio.sleep(0)) for _ in group]

        tasks = await commit_starting(c, batch, [(early, {}), (late, {})], start)
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == ["start early", "commit", "start late"]


def test_a_failed_commit_stops_the_tools_started_early_and_raises() -> None:
    async def main() -> asyncio.Task[Any]:
        c, journal = committer()
        journal.fail = RuntimeError("disk full")
        s, batch = step("a"), Batch(1)
        transition(batch, s, StepStatus.RUNNING)
        started: list[asyncio.Task[Any]] = []

        def start(group: Starts) -> list[asyncio.Task[Any]]:
            started.extend(asyncio.create_task(asyncio.sleep(10)) for _ in group)
            return started

        with pytest.raises(RuntimeError):
            await commit_starting(c, batch, [(s, {})], start)
        return started[0]

    assert asyncio.run(main()).cancelled()


def test_idempotent_starts_defer_until_the_loop_goes_idle() -> None:
    loop = IdleLoop()
    pending, journal = _pending(loop)
    assert pending.should_defer(_started(pending, step("a")), gated=False)
    loop.now += 2 * DEFER_SECONDS
    assert not pending.should_defer([], gated=False)  # waited long enough


def test_a_non_idempotent_start_commits_at_once_and_its_finish_may_wait_for_idle() -> None:
    pending, _ = _pending()
    assert not pending.should_defer(
        _started(pending, step("w", spec=tool(idempotent=False))), gated=False
    )
    loop = IdleLoop()
    pending, _ = _pending(loop)
    done = step("d", status="running", spec=tool(idempotent=False))
    pending.finished(done, Outcome(True, result=1))
    assert pending.should_defer([], gated=False)  # nothing waits on it but durability
    loop.now += 2 * DEFER_SECONDS
    assert not pending.should_defer([], gated=False)  # a few milliseconds at most


def test_nothing_defers_while_gated_after_an_idle_mark_or_without_idle_callbacks() -> None:
    pending, _ = _pending()
    assert not pending.should_defer([], gated=True)
    pending.went_idle()
    assert not pending.should_defer([], gated=False)
    no_idle, _ = _pending(PlainLoop())
    assert not no_idle.should_defer([], gated=False)


def test_held_finishes_are_written_before_held_starts_and_taken_as_one_batch() -> None:
    pending, _ = _pending()
    done = step("done", status="running", attempts=1)
    pending.finished(done, Outcome(True, result=1))
    _started(pending, step("next"))
    batch = pending.take()
    assert [(w.expect, w.status) for w in batch.steps] == [
        ("running", "succeeded"),
        ("pending", "running"),
    ]
    assert pending.batch is not batch and not pending.done and not pending.starts


def test_a_deferred_round_asks_once_to_be_told_when_the_loop_is_idle() -> None:
    async def main() -> tuple[IdleLoop, KeptJournal, int]:
        loop = IdleLoop()
        pending, journal = _pending(loop)
        for key in ("a", "b"):
            starts = _started(pending, step(key))
            await pending.commit(
                starts,
                lambda group: [asyncio.create_task(asyncio.sleep(0)) for _ in group],
                lambda: None,
                gated=False,
            )
        return loop, journal, len(pending.batch.steps)

    loop, journal, held = asyncio.run(main())
    assert (len(loop.idle_callbacks), journal.batches, held) == (1, [], 2)


def strict(key: str, **fields: Any) -> StepState:
    return step(key, spec=tool(idempotent=False, **fields))


def test_only_many_write_ahead_starts_together_commit_as_an_intent() -> None:
    many = [(strict(f"s{i}"), {}) for i in range(ANNOUNCE_STARTS)]
    assert may_announce(many) == [s.id for s, _ in many]
    assert may_announce(many[1:]) is None  # a few: their rows cost what the intent does
    # Idempotent steps are not named (they start early anyway), nor counted.
    assert may_announce([*many[1:], (step("idem"), {})]) is None
    assert may_announce([*many, (step("idem"), {})]) == [s.id for s, _ in many]
    # A pool's or an agent's step needs its row written ahead: nothing is announced.
    assert may_announce([*many, (strict("pooled", queue="gpu"), {})]) is None
    agent = step("agent", spec=ToolSpec(name="a", kind="agent", idempotent=False))
    assert may_announce([*many, (agent, {})]) is None


def test_many_write_ahead_starts_commit_as_an_intent_then_their_rows_at_idle() -> None:
    order: list[str] = []

    async def main() -> tuple[IdleLoop, KeptJournal, PendingWrites]:
        loop = IdleLoop()
        pending, journal = _pending(loop)
        original = journal.commit

        def commit(batch: Batch) -> list[int]:
            order.append("commit")
            return original(batch)

        journal.commit = commit  # type: ignore[method-assign]
        root = step("root", status="running", attempts=1, spec=tool(idempotent=False))
        pending.finished(root, Outcome(True, result={"built": 1}))
        fan = [strict(f"m{i}") for i in range(ANNOUNCE_STARTS + 2)]
        starts = _started(pending, *fan)

        def start(group: Starts) -> list[asyncio.Task[Any]]:
            order.extend(f"start {s.key}" for s, _ in group)
            return [asyncio.create_task(asyncio.sleep(0)) for _ in group]

        await pending.commit(starts, start, lambda: None, gated=False)
        return loop, journal, pending

    loop, journal, pending = asyncio.run(main())
    fan_keys = [f"start m{i}" for i in range(ANNOUNCE_STARTS + 2)]
    # The intent is durable before any tool is called; nothing of the fan-out commits yet.
    assert order == ["commit", *fan_keys] and len(loop.idle_callbacks) == 1
    (intent,) = journal.batches
    assert [(w.expect, w.status) for w in intent.steps] == [("running", "succeeded")]
    assert intent.starting == [w.step_id for w in pending.batch.steps]
    assert len(intent.starting) == ANNOUNCE_STARTS + 2
    # Their rows and events wait for idle in the next batch, which clears the intent.
    held = pending.batch
    assert {(w.expect, w.status) for w in held.steps} == {("pending", "running")}
    assert len(held.events) == len(held.steps) and held.starting == []
    assert pending.take() is held  # whoever commits it (idle, a retry, the end) clears it


def test_a_failed_intent_commit_starts_no_tool() -> None:
    async def main() -> list[str]:
        pending, journal = _pending()
        journal.fail = RuntimeError("disk full")
        started: list[str] = []

        def start(group: Starts) -> list[asyncio.Task[Any]]:
            started.extend(s.key for s, _ in group)
            return []

        fan = _started(pending, *(strict(f"m{i}") for i in range(ANNOUNCE_STARTS)))
        with pytest.raises(RuntimeError):
            await pending.commit(fan, start, lambda: None, gated=False)
        return started

    assert asyncio.run(main()) == []


def test_write_ahead_starts_commit_their_rows_when_few_gated_or_the_loop_has_no_idle() -> None:
    def first_commit(loop: Any, n: int, *, gated: bool) -> Batch:
        async def main() -> Batch:
            pending, journal = _pending(loop)
            fan = _started(pending, *(strict(f"m{i}") for i in range(n)))
            await pending.commit(fan, lambda group: [], lambda: None, gated=gated)
            return journal.batches[0]

        return asyncio.run(main())

    for batch in (
        first_commit(IdleLoop(), ANNOUNCE_STARTS - 1, gated=False),
        first_commit(IdleLoop(), ANNOUNCE_STARTS, gated=True),
        first_commit(PlainLoop(), ANNOUNCE_STARTS, gated=False),
    ):
        assert batch.starting is None
        assert {(w.expect, w.status) for w in batch.steps} == {("pending", "running")}


def test_a_retry_committing_while_the_intent_waits_for_the_lock_writes_each_row_once() -> None:
    async def main() -> tuple[KeptJournal, PendingWrites]:
        pending, journal = _pending(IdleLoop())
        fan = _started(pending, *(strict(f"m{i}") for i in range(ANNOUNCE_STARTS)))
        lock = pending.committer.lock
        await lock.acquire()  # a retry's commit holds the lock
        intent = asyncio.create_task(
            pending.commit(fan, lambda group: [], lambda: None, gated=False)
        )
        await asyncio.sleep(0)
        await journal.commit_async(pending.take())  # the retry takes what is held
        lock.release()
        await intent
        await journal.commit_async(pending.take())  # the loop went idle
        return journal, pending

    journal, pending = asyncio.run(main())
    rows = [w.step_id for b in journal.batches for w in b.steps]
    assert len(rows) == len(set(rows)) == ANNOUNCE_STARTS  # no row twice, none lost
    # The retry wrote the rows first; the intent after them is cleared by the next commit.
    assert [b.starting is not None and bool(b.starting) for b in journal.batches] == [
        False,
        True,
        False,
    ]
    assert journal.batches[-1].starting == [] and not pending.batch


def finished_together(pending: PendingWrites, n: int) -> list[StepState]:
    """``n`` running steps whose finishes the loop took in, one round each, starting nothing."""
    done = [
        step(f"d{i}", status="running", attempts=1, spec=tool(idempotent=False)) for i in range(n)
    ]

    async def rounds() -> None:
        for state in done:
            pending.finished(state, Outcome(True, result={"n": state.key}))
            await pending.commit([], lambda group: [], lambda: None, gated=False)

    asyncio.run(rounds())
    return done


def test_a_round_that_starts_nothing_writes_its_finishes_into_the_batch_at_once() -> None:
    pending, journal = _pending()
    done = finished_together(pending, 3)
    assert not pending.done and journal.batches == []  # written, not committed
    assert [(w.step_id, w.status) for w in pending.batch.steps] == [
        (s.id, "succeeded") for s in done
    ]


def test_only_a_write_ahead_commit_of_many_rows_that_moves_nothing_may_be_held() -> None:
    def batch_of(n: int) -> Batch:
        batch = Batch(1)
        for i in range(n):
            transition(batch, step(f"d{i}", status="running", attempts=1), StepStatus.SUCCEEDED)
        return batch

    sink = [(strict("sink"), {})]
    assert may_hold(batch_of(HOLD_ROWS), sink)
    assert not may_hold(batch_of(HOLD_ROWS - 1), sink)  # a few rows cost what a document does
    assert not may_hold(batch_of(HOLD_ROWS), [])  # no tool waits for this commit
    moving = batch_of(HOLD_ROWS)
    moving.set_run(
        RunWrite("executing", "succeeded"),
        "executor",
        RunStatusChanged(from_status="executing", to_status="succeeded", reason=""),
    )
    assert not may_hold(moving, sink)  # how a run ends is never held
    # A pool's or an agent's step needs its row as its tool starts.
    assert not may_hold(batch_of(HOLD_ROWS), [*sink, (strict("pooled", queue="gpu"), {})])
    agent = step("agent", spec=ToolSpec(name="a", kind="agent", idempotent=False))
    assert not may_hold(batch_of(HOLD_ROWS), [(agent, {})])


def fan_in(holds: bool) -> tuple[list[str], KeptJournal, PendingWrites, IdleLoop, list[StepState]]:
    """Many steps finish, then their sink (not idempotent) starts."""
    order: list[str] = []
    loop = IdleLoop()
    pending, journal = _pending(loop)
    journal.holds = holds
    original = journal.commit

    def commit(batch: Batch) -> list[int]:
        order.append("commit")
        return original(batch)

    journal.commit = commit  # type: ignore[method-assign]
    done = finished_together(pending, HOLD_ROWS + 2)

    def start(group: Starts) -> list[asyncio.Task[Any]]:
        order.extend(f"start {s.key}" for s, _ in group)
        return [asyncio.create_task(asyncio.sleep(0)) for _ in group]

    async def sink_starts() -> None:
        await pending.commit(_started(pending, strict("sink")), start, lambda: None, gated=False)

    asyncio.run(sink_starts())
    return order, journal, pending, loop, done


def test_a_fan_ins_finishes_commit_held_in_front_of_the_sink_and_the_next_write_applies_them() -> (
    None
):
    order, journal, pending, loop, done = fan_in(holds=True)
    # Durable before the sink's tool is called: every finish and the sink's start, held.
    assert order == ["commit", "start sink"]
    (held,) = journal.batches
    assert held.hold and held.run is None
    assert [w.step_id for w in held.steps if w.status == "succeeded"] == [s.id for s in done]
    assert [w.status for w in held.steps][-1] == "running"
    # The next batch commits even empty (that write applies it), at idle.
    assert pending.batch.flush and bool(pending.batch) and not pending.batch.steps
    assert pending.idle_asked and loop.idle_callbacks
    assert pending.take().flush


def test_a_journal_that_cannot_hold_commits_the_fan_ins_rows() -> None:
    _, journal, pending, _, done = fan_in(holds=False)
    (batch,) = journal.batches
    assert not batch.hold and len(batch.steps) == len(done) + 1
    assert not pending.batch.flush and not pending.batch


def test_an_intent_in_front_of_many_finishes_is_held_and_cleared_by_the_next_write() -> None:
    async def main() -> tuple[KeptJournal, PendingWrites]:
        pending, journal = _pending(IdleLoop())
        journal.holds = True
        for i in range(HOLD_ROWS):
            pending.finished(step(f"d{i}", status="running", attempts=1), Outcome(True, result=i))
        fan = _started(pending, *(strict(f"m{i}") for i in range(ANNOUNCE_STARTS)))
        await pending.commit(fan, lambda group: [], lambda: None, gated=False)
        return journal, pending

    journal, pending = asyncio.run(main())
    (intent,) = journal.batches
    assert intent.hold and len(intent.starting or []) == ANNOUNCE_STARTS
    assert len(intent.steps) == HOLD_ROWS  # the finishes; the starts follow in the next batch
    assert pending.batch.starting == [] and len(pending.batch.steps) == ANNOUNCE_STARTS
