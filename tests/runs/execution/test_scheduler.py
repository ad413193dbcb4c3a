"""Scheduler state: a step is ready once its own dependencies succeeded; leftovers are settled first."""

from __future__ import annotations

import asyncio
from typing import Any

from runs.execution.journal import Batch
from runs.execution.scheduler import Scheduler
from runs.execution.steps import Outcome, StepState
from tests.runs.execution.units import step, tool


def _ready(scheduler: Scheduler) -> list[str]:
    return list(scheduler.ready)


def _finish(scheduler: Scheduler, state: StepState, ok: bool = True) -> None:
    scheduler.running[state.key] = None  # type: ignore[assignment]
    scheduler.finished(state, Outcome(ok, result=state.key))


def test_steps_become_ready_as_soon_as_their_own_dependencies_succeed() -> None:
    a, b, c, d = step("a"), step("b"), step("c", "a"), step("d", "a", "b")
    scheduler = Scheduler([a, b, c, d], {})
    scheduler.queue(Batch(1))
    assert _ready(scheduler) == ["a", "b"]
    scheduler.ready.clear()
    _finish(scheduler, a)
    assert _ready(scheduler) == ["c"]  # d still needs b
    _finish(scheduler, b)
    assert _ready(scheduler) == ["c", "d"]
    assert scheduler.results == {"a": "a", "b": "b"}


def test_a_failed_step_releases_nothing() -> None:
    a, b = step("a"), step("b", "a")
    scheduler = Scheduler([a, b], {})
    scheduler.queue(Batch(1))
    scheduler.ready.clear()
    _finish(scheduler, a, ok=False)
    assert _ready(scheduler) == [] and scheduler.waiting["b"] == 1 and scheduler.running == {}


def test_succeeded_dependencies_from_an_earlier_worker_count_as_met() -> None:
    a, b = step("a", status="succeeded"), step("b", "a")
    a.result = 7
    scheduler = Scheduler([a, b], {})
    assert scheduler.recover(Batch(1)) == (None, None)
    scheduler.queue(Batch(1))
    assert _ready(scheduler) == ["b"] and scheduler.results == {"a": 7}


def test_an_idempotent_step_left_running_is_re_queued_and_another_is_reported() -> None:
    batch = Batch(1)
    again = step("again", status="running", attempts=1)
    assert Scheduler([again], {}).recover(batch) == (None, None)
    assert again.status == "pending" and [w.status for w in batch.steps] == ["pending"]

    partial = step("partial", status="running", spec=tool(idempotent=False))
    later = step("later", status="running")
    found, failure = Scheduler([partial, later], {}).recover(Batch(1))
    assert (found, failure) == (partial, None)
    assert later.status == "running"  # nothing after the partly-run step is touched


def test_a_step_left_running_whose_tool_honours_its_idempotency_key_is_re_queued() -> None:
    batch = Batch(1)
    honours = tool(idempotent=False, honours_idempotency_key=True)
    again = step("again", status="running", attempts=1, spec=honours)
    assert Scheduler([again], {}).recover(batch) == (None, None)
    assert again.status == "pending" and [w.status for w in batch.steps] == ["pending"]
    ((_, event),) = batch.events
    assert "honours the step's idempotency key" in event.summary  # type: ignore[union-attr]


def test_the_first_failed_or_cancelled_step_is_the_failure() -> None:
    a, b = step("a", status="cancelled"), step("b", status="failed")
    b.error = "boom"
    assert Scheduler([a, b], {}).recover(Batch(1)) == (None, "step a cancelled")


def test_steps_needing_a_skipped_step_are_skipped_in_turn() -> None:
    batch = Batch(1)
    a, b, c, d = step("a", status="skipped"), step("b", "a"), step("c", "b"), step("d")
    scheduler = Scheduler([a, b, c, d], {})
    scheduler.queue(batch)
    assert [s.status for s in (b, c, d)] == ["skipped", "skipped", "pending"]
    assert _ready(scheduler) == ["d"]


def test_when_the_run_stops_unstarted_steps_say_whether_they_needed_a_failed_one() -> None:
    batch = Batch(1)
    a, b, c = step("a", status="failed"), step("b", "a"), step("c")
    Scheduler([a, b, c], {}).skip_unstarted(batch, "step a failed")
    reasons = [e.json for _, e in batch.events]  # type: ignore[union-attr]
    assert "needs a, which did not succeed" in reasons[0]
    assert "not started: the run stopped (step a failed)" in reasons[1]


def test_a_decided_gate_makes_its_step_ready_and_gated_steps_keep_the_loop_busy() -> None:
    a = step("a")
    running: dict[str, asyncio.Task[Any]] = {}
    scheduler = Scheduler([a], running)
    scheduler.queue(Batch(1))
    scheduler.gate(scheduler.pop_ready())
    assert not scheduler.idle(False) and _ready(scheduler) == []
    scheduler.ungate([a])
    assert scheduler.idle(False) and _ready(scheduler) == ["a"]
