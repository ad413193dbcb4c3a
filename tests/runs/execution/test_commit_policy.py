"""The commit policy: write-ahead for non-idempotent starts, idle commits for idempotent changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from runs.execution.commit_policy import (
    DEFER_ROWS,
    DEFER_SECONDS,
    PendingWrites,
    Starts,
    commit_starting,
    may_defer,
    may_start_early,
)
from runs.execution.journal import Batch
from runs.execution.steps import Outcome, StepState, change, transition
from runs.models import StepStatus
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
