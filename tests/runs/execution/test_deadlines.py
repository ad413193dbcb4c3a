"""Step timeouts shared by steps that start together, and which steps start (and commit) when."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from runs.execution.deadlines import Deadlines
from runs.execution.journal import Journal, StaleStateError
from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, Step, Tool
from tests.runs import toolbox
from tests.runs.execution.test_engine import events, step


async def _attempt(deadlines: Deadlines, seconds: float) -> str:
    """One step attempt as ``_run_step`` makes it: a timeout is told apart from a cancel."""
    task = asyncio.current_task()
    assert task is not None
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        if not deadlines.expired(task):
            deadlines.disarm(task)
            raise
        deadlines.disarm(task)
        return "timed out"
    deadlines.disarm(task)
    return "done"


def test_steps_sharing_a_deadline_time_out_only_while_still_in_their_attempt() -> None:
    async def main() -> list[str]:
        deadlines = Deadlines(asyncio.get_running_loop())
        quick = asyncio.create_task(_attempt(deadlines, 0))
        slow = asyncio.create_task(_attempt(deadlines, 5))
        deadlines.arm([quick, slow], 0.05)
        return await asyncio.gather(quick, slow)

    assert asyncio.run(asyncio.wait_for(main(), 3)) == ["done", "timed out"]


def test_a_cancel_arriving_with_the_deadline_is_not_taken_for_a_timeout() -> None:
    async def main() -> bool:
        deadlines = Deadlines(asyncio.get_running_loop())
        task = asyncio.create_task(_attempt(deadlines, 5))
        await asyncio.sleep(0)  # the attempt is waiting
        deadlines.arm([task], 60)
        (group,) = set(deadlines._group_of.values())
        group.handle.cancel()  # fire the deadline now, by hand...
        deadlines._expire(group)
        task.cancel()  # ...and the operator cancels too, before the task sees either
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(asyncio.wait_for(main(), 3)) is True


def test_the_deadline_timer_goes_once_its_steps_are_done_or_closed() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop)
        tasks = [asyncio.create_task(_attempt(deadlines, 0)) for _ in range(3)]
        deadlines.arm(tasks, 60)
        await asyncio.gather(*tasks)
        after_done = len([h for h in loop._scheduled if not h.cancelled()])  # type: ignore[attr-defined]
        waiting = asyncio.create_task(asyncio.sleep(5))
        deadlines.arm([waiting], 60)
        deadlines.close()
        waiting.cancel()
        live = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
        return after_done, len(live)

    assert asyncio.run(main()) == (0, 0)


@pytest.fixture
def deadline_tools(make_tool: Callable[..., Tool]) -> None:
    make_tool("slow_once", "slow_once", idempotent=True, max_retries=1, timeout_seconds=0.3)
    make_tool("note_idempotent", "yields", idempotent=True)
    make_tool("note_strict", "yields", idempotent=False)


def test_a_timed_out_attempt_is_retried_under_a_deadline_of_its_own(
    execute: Callable[..., Run], deadline_tools: None, key: str
) -> None:
    run = execute(
        {
            "steps": [
                step("a", "slow_once", key, seconds=30),
                step("b", "slow_once", key, seconds=30),
            ]
        }
    )
    assert run.status == "succeeded", run.stop_reason
    assert sorted(toolbox.CALLS[key]) == ["a#1", "a#2", "b#1", "b#2"]
    assert {s.key: s.attempts for s in Step.objects.filter(run=run)} == {"a": 2, "b": 2}
    errors = {e.payload["step"]: e.payload["error"] for e in events(run, "step.retrying")}
    assert errors == {"a": "timed out after 0.3s", "b": "timed out after 0.3s"}


def test_idempotent_steps_start_before_their_running_row_commits_other_steps_after(
    execute: Callable[..., Run],
    deadline_tools: None,
    key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = toolbox.CALLS[key]
    commit = Journal.commit

    def recording_commit(self: Journal, batch: Any, **kwargs: Any) -> list[int]:
        starting = [w for w in batch.steps if (w.expect, w.status) == ("pending", "running")]
        if starting:
            calls.append(f"commit {len(starting)} start(s)")
        return commit(self, batch, **kwargs)

    monkeypatch.setattr(Journal, "commit", recording_commit)
    run = execute(
        {
            "steps": [
                step("strict", "note_strict", key, times=1),
                step("idem", "note_idempotent", key, deps=("strict",), times=1),
                step("strict-2", "note_strict", key, deps=("idem",), times=1),
            ]
        }
    )
    assert run.status == "succeeded", run.stop_reason
    assert calls == [
        "commit 1 start(s)",
        "strict",
        "idem",  # called first, recorded running by the next commit: strict-2's
        "commit 2 start(s)",
        "strict-2",
    ]
    kinds = [(e.payload.get("step"), e.payload.get("to_status")) for e in events(run)]
    assert kinds.index(("idem", "running")) < kinds.index(("idem", "succeeded"))


@pytest.mark.parametrize("idempotent", [True, False])
def test_finishes_that_start_nothing_commit_once_the_loop_is_idle(
    execute: Callable[..., Run],
    make_tool: Callable[..., Tool],
    key: str,
    monkeypatch: pytest.MonkeyPatch,
    idempotent: bool,
) -> None:
    make_tool("yields", "yields", idempotent=idempotent)
    finishes: list[int] = []
    commit = Journal.commit

    def recording_commit(self: Journal, batch: Any, **kwargs: Any) -> list[int]:
        done = sum(1 for w in batch.steps if (w.expect, w.status) == ("running", "succeeded"))
        if done:
            finishes.append(done)
        return commit(self, batch, **kwargs)

    monkeypatch.setattr(Journal, "commit", recording_commit)
    # Three steps ending turns apart, the loop busy all along: never idle in between.
    run = execute(
        {"steps": [step(s, "yields", key, times=n) for s, n in (("a", 1), ("b", 8), ("c", 16))]}
    )
    assert run.status == "succeeded", run.stop_reason
    assert finishes == [3]  # one commit: none of them waited behind another's
    kinds = [(e.payload.get("step"), e.payload.get("to_status")) for e in events(run)]
    assert [k for k in kinds if k[0] and k[1] == "succeeded"] == [
        ("a", "succeeded"),
        ("b", "succeeded"),
        ("c", "succeeded"),
    ]


def test_a_commit_that_fails_after_an_early_start_stops_the_tools_it_started(
    fast_settings: Any,
    make_tool: Callable[..., Tool],
    key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_tool("fail", "fail")
    make_tool("hang", "hang", idempotent=True)
    run = run_submit_plan(
        title="test",
        document={
            "steps": [step("a", "fail", key)],
            "rollback": [{"action": "hang", "params": {"key": key, "label": "undo"}}],
        },
        submitted_by=None,
    )
    undo = Step.objects.get(run=run, phase=Step.Phase.ROLLBACK)
    commit = Journal.commit

    def losing_commit(self: Journal, batch: Any, **kwargs: Any) -> list[int]:
        if any(w.step_id == undo.pk and w.status == "running" for w in batch.steps):
            raise StaleStateError("another worker took the run over")  # nothing written
        return commit(self, batch, **kwargs)

    monkeypatch.setattr(Journal, "commit", losing_commit)
    started = time.monotonic()
    run_execute(run_id=run.pk)
    assert time.monotonic() - started < toolbox.WAIT_LIMIT
    assert toolbox.CALLS[key] == ["a", "undo", "undo:cancelled"]
    undo.refresh_from_db()
    assert undo.status == "pending"  # the rollback step's start was never written


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_chain_of_quick_steps_commits_in_batches_only_when_its_tools_are_idempotent(
    execute: Callable[..., Run],
    make_tool: Callable[..., Tool],
    key: str,
    monkeypatch: pytest.MonkeyPatch,
    idempotent: bool,
) -> None:
    make_tool("yields", "yields", idempotent=idempotent)
    commits = 0
    commit = Journal.commit

    def recording_commit(self: Journal, batch: Any, **kwargs: Any) -> list[int]:
        nonlocal commits
        commits += bool(batch.steps)
        return commit(self, batch, **kwargs)

    monkeypatch.setattr(Journal, "commit", recording_commit)
    n = 30  # the loop never goes idle (yields): idempotent changes commit at most every 5 ms
    chain = [step(f"s{i}", "yields", key, (f"s{i - 1}",) if i else (), times=1) for i in range(n)]
    run = execute({"steps": chain})
    assert run.status == "succeeded", run.stop_reason
    if idempotent:
        assert commits <= n // 3
    else:
        assert commits >= n  # each start commits before its tool is called
    changes = [(e.payload["step"], e.payload["to_status"]) for e in events(run, "step.status")]
    assert changes == [(f"s{i}", to) for i in range(n) for to in ("running", "succeeded")]
    seqs = [e.seq for e in events(run)]
    assert seqs == list(range(1, len(seqs) + 1))
    rows = {s.key: s for s in Step.objects.filter(run=run)}
    for i in range(n):
        s = rows[f"s{i}"]
        assert (s.status, s.attempts) == ("succeeded", 1)
        assert s.started_at <= s.finished_at
        if i:  # each start has its own time, after the step before it finished
            assert rows[f"s{i - 1}"].finished_at <= s.started_at
            assert rows[f"s{i - 1}"].started_at < s.started_at


def test_a_step_failing_before_its_start_commits_records_its_retry_after_the_start(
    execute: Callable[..., Run], make_tool: Callable[..., Tool], key: str
) -> None:
    make_tool("flaky_now", "flaky_now", idempotent=True, max_retries=1)
    run = execute({"steps": [step("a", "flaky_now", key, fail_times=1)]})
    assert run.status == "succeeded", run.stop_reason
    assert toolbox.CALLS[key] == ["a#1", "a#2"]
    assert Step.objects.get(run=run, key="a").attempts == 2
    story = [
        (e.kind, e.payload.get("to_status") or e.payload.get("attempt"))
        for e in events(run)
        if e.payload.get("step") == "a"
    ]
    assert story == [("step.status", "running"), ("step.retrying", 2), ("step.status", "succeeded")]


def test_a_retry_whose_commit_finds_the_run_moved_stops_the_executor_at_once(
    execute: Callable[..., Run], key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = Journal.commit

    def losing_commit(self: Journal, batch: Any, **kwargs: Any) -> list[int]:
        if any(event.kind == "step.retrying" for _, event in batch.events):
            raise StaleStateError("another worker took the run over")  # nothing written
        return commit(self, batch, **kwargs)

    monkeypatch.setattr(Journal, "commit", losing_commit)
    started = time.monotonic()
    run = execute({"steps": [step("a", "flaky", key, fail_times=1)]})
    assert time.monotonic() - started < toolbox.WAIT_LIMIT
    assert run.status == "executing"  # left to whoever holds it now
    assert toolbox.CALLS[key] == ["a#1"]
    assert Step.objects.get(run=run, key="a").attempts == 1
    assert not events(run, "step.retrying")
