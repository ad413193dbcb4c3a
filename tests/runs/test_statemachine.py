"""The run and step state machines: legal moves write state + event, illegal ones write nothing."""

from __future__ import annotations

import pytest

from runs.models import Run, RunStatus, Task, TranscriptEvent
from runs.statemachine import (
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    STEP_TRANSITIONS,
    TransitionError,
    run_transition,
)


@pytest.fixture
def run(db: None) -> Run:
    return Run.objects.create(task=Task.objects.create(title="t"))


def test_a_legal_run_transition_writes_the_status_and_its_event(run: Run) -> None:
    run_transition(run_id=run.pk, to=RunStatus.EXECUTING, reason="claimed")
    run.refresh_from_db()
    assert run.status == RunStatus.EXECUTING
    assert run.started_at is not None
    event = TranscriptEvent.objects.get(run=run)
    assert (event.seq, event.kind) == (1, "run.status")
    assert event.payload == {"from_status": "queued", "to_status": "executing", "reason": "claimed"}


def test_an_illegal_run_transition_raises_and_writes_nothing(run: Run) -> None:
    with pytest.raises(TransitionError, match="cannot go from 'queued' to 'succeeded'"):
        run_transition(run_id=run.pk, to=RunStatus.SUCCEEDED)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert not TranscriptEvent.objects.filter(run=run).exists()


def test_a_terminal_transition_records_the_stop_reason_and_releases_the_lease(run: Run) -> None:
    run_transition(run_id=run.pk, to=RunStatus.EXECUTING, lease_owner="w1")
    run_transition(run_id=run.pk, to=RunStatus.FAILED, reason="step x failed")
    run.refresh_from_db()
    assert (run.status, run.stop_reason, run.lease_owner) == ("failed", "step x failed", "")
    assert run.finished_at is not None
    assert list(TranscriptEvent.objects.filter(run=run).values_list("seq", flat=True)) == [1, 2]


def test_terminal_states_have_no_way_out() -> None:
    assert {"succeeded", "failed", "rolled_back", "escalated", "cancelled"} == RUN_TERMINAL
    for status in RUN_TERMINAL:
        assert RUN_TRANSITIONS[status] == frozenset()


def test_every_status_has_a_row_in_its_table() -> None:
    from runs.models import StepStatus

    assert set(RUN_TRANSITIONS) == set(RunStatus.values)
    assert set(STEP_TRANSITIONS) == set(StepStatus.values)
    for targets in (*RUN_TRANSITIONS.values(), *STEP_TRANSITIONS.values()):
        assert targets <= set(RunStatus.values) | set(StepStatus.values)
