"""Step transitions in memory and in the batch: rows carry plain text, events tell the story."""

from __future__ import annotations

import json

import pytest

from runs.evaluation.checks import Verdict
from runs.execution.journal import Batch
from runs.execution.steps import EVALUATOR, EXECUTOR, Outcome, change, finish, transition
from runs.models import StepStatus
from runs.statemachine import TransitionError
from tests.runs.execution.units import step


def test_starting_a_step_counts_an_attempt_and_stamps_its_start_in_a_plain_text_row() -> None:
    batch, s = Batch(1), step("a")
    transition(batch, s, StepStatus.RUNNING)
    (write,) = batch.steps
    assert (s.status, s.attempts, s.started_at) == ("running", 1, batch.stamp())
    assert (write.expect, write.status, write.attempts) == ("pending", "running", 1)
    assert type(write.status) is str and type(s.status) is str  # never the enum member
    ((role, event),) = batch.events
    assert role == EXECUTOR and json.loads(event.json)["to_status"] == "running"


def test_a_success_stores_its_result_and_finish_time_and_shows_the_result_in_its_event() -> None:
    batch, s = Batch(1), step("a", status="running", attempts=1)
    finish(batch, s, Outcome(True, result={"n": 1}, result_json='{"n": 1}'))
    assert (s.status, s.result, s.finished_at) == ("succeeded", {"n": 1}, batch.stamp())
    assert json.loads(batch.events[0][1].json)["result"] == {"n": 1}


def test_an_evaluator_fail_records_the_verdict_event_before_the_failed_step() -> None:
    batch, s = Batch(1), step("a", status="running", attempts=1)
    verdict = Verdict("fail", "too small", "range")
    finish(batch, s, Outcome(False, result=3, error="evaluator: too small", verdict=verdict))
    assert [role for role, _ in batch.events] == [EVALUATOR, EXECUTOR]
    assert (s.status, s.error) == ("failed", "evaluator: too small")
    assert batch.steps[0].verdict == ("fail", "too small")


def test_a_quiet_retry_changes_the_row_without_a_status_event() -> None:
    batch, s = Batch(1), step("a", status="running", attempts=1)
    transition(batch, s, StepStatus.RUNNING, error="boom", attempts=2, quiet=True)
    assert (s.attempts, s.error, len(batch.steps), batch.events) == (2, "boom", 1, [])


def test_re_queueing_clears_the_start_time() -> None:
    batch, s = Batch(1), step("a", status="running", attempts=1)
    s.started_at = "then"
    write = change(batch, s, StepStatus.PENDING)
    assert (s.started_at, write.status) == (None, "pending")


def test_an_illegal_transition_raises_before_anything_is_in_the_batch() -> None:
    batch, s = Batch(1), step("a")
    with pytest.raises(TransitionError):
        transition(batch, s, StepStatus.SUCCEEDED)
    assert batch.steps == [] and batch.events == []
