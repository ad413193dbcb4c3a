"""The run and step state machines: each table pair by pair against its spec, and run_transition
on the database (legal moves write state + event, illegal ones write nothing)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runs.models import Run, RunStatus, Step, StepStatus, Task, TranscriptEvent
from runs.statemachine import (
    RUN_REOPEN,
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    STEP_FINISHED,
    STEP_REOPEN,
    STEP_TRANSITIONS,
    TransitionError,
    check_run_reopen,
    check_run_transition,
    check_step_transition,
    run_transition,
    step_reopen,
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
    assert set(RUN_TRANSITIONS) == set(RunStatus.values)
    assert set(STEP_TRANSITIONS) == set(StepStatus.values)
    for targets in (*RUN_TRANSITIONS.values(), *STEP_TRANSITIONS.values()):
        assert targets <= set(RunStatus.values) | set(StepStatus.values)


# The tables as the design states them. Each table test below walks every
# (current, target) pair of statuses against these, so any change to a table, or a new
# status, fails on the pair it touches until the spec here says the same.
RUN_SPEC: dict[str, set[str]] = {
    "queued": {
        "planning",
        "awaiting_approval",
        "executing",
        "rolling_back",
        "failed",
        "cancelled",
    },
    "planning": {
        "awaiting_approval",
        "awaiting_input",
        "executing",
        "failed",
        "escalated",
        "cancelled",
    },
    "awaiting_approval": {"queued", "executing", "rolling_back", "failed", "cancelled"},
    "awaiting_input": {"queued", "failed", "escalated", "cancelled"},
    # A subplan step's child run stopped: the parent goes on (queued), or stops with it.
    "awaiting_child": {"queued", "rolling_back", "failed", "cancelled"},
    "executing": {
        "awaiting_approval",
        "awaiting_child",  # a subplan step started its child run
        "awaiting_input",  # the iterative planner asks instead of its next step
        "replanning",
        "rolling_back",
        "succeeded",
        "failed",
        "escalated",
        "cancelled",
    },
    "replanning": {
        "awaiting_approval",
        "executing",
        "rolling_back",
        "failed",
        "escalated",
        "cancelled",
    },
    "rolling_back": {"rolled_back", "failed", "escalated", "cancelled"},
    "succeeded": set(),
    "failed": set(),
    "rolled_back": set(),
    "escalated": set(),
    "cancelled": set(),
}
RUN_REOPEN_SPEC: dict[str, set[str]] = {
    "escalated": {"queued", "rolling_back", "cancelled"},
    "succeeded": {"rolling_back"},  # a child run undone because its parent rolled back
}
RUN_TERMINAL_SPEC = {"succeeded", "failed", "rolled_back", "escalated", "cancelled"}

STEP_SPEC: dict[str, set[str]] = {
    "pending": {"running", "skipped", "cancelled"},
    "running": {"running", "pending", "succeeded", "failed", "cancelled"},
    "succeeded": {"rolled_back"},
    "failed": set(),
    "skipped": set(),
    "cancelled": set(),
    "rolled_back": set(),
}
STEP_REOPEN_SPEC: dict[str, set[str]] = {
    "failed": {"pending", "skipped", "succeeded"},
    "skipped": {"pending"},
    "running": {"pending", "skipped", "failed"},
    "pending": {"skipped"},
    "succeeded": {"rolled_back"},
}
STEP_FINISHED_SPEC = {"succeeded", "failed", "skipped", "cancelled", "rolled_back"}


def pairs(statuses: list[str]) -> list[tuple[str, str]]:
    return [(current, target) for current in statuses for target in statuses]


RUN_PAIRS = pairs(RunStatus.values)
STEP_PAIRS = pairs(StepStatus.values)


def pair_id(pair: tuple[str, str]) -> str:
    return f"{pair[0]}->{pair[1]}"


def test_the_specs_name_every_status_once() -> None:
    assert set(RUN_SPEC) == set(RunStatus.values)
    assert set(STEP_SPEC) == set(StepStatus.values)
    assert set(RUN_TRANSITIONS) == set(RunStatus.values)
    assert set(STEP_TRANSITIONS) == set(StepStatus.values)


# --------------------------------------------------------------------------- run table
@pytest.mark.parametrize("pair", RUN_PAIRS, ids=pair_id)
def test_the_run_table_allows_exactly_the_specified_moves(pair: tuple[str, str]) -> None:
    current, target = pair
    assert (target in RUN_TRANSITIONS[current]) == (target in RUN_SPEC[current])


@pytest.mark.parametrize("pair", RUN_PAIRS, ids=pair_id)
def test_check_run_transition_accepts_allowed_moves_and_refuses_every_other(
    pair: tuple[str, str],
) -> None:
    current, target = pair
    if target in RUN_SPEC[current]:
        check_run_transition(current, target)
        return
    with pytest.raises(TransitionError) as refused:
        check_run_transition(current, target, what="run 7")
    assert (refused.value.what, refused.value.current, refused.value.target) == (
        "run 7",
        current,
        target,
    )
    assert str(refused.value) == f"run 7 cannot go from {current!r} to {target!r}"


def test_the_terminal_runs_are_exactly_those_without_exits() -> None:
    assert RUN_TERMINAL == RUN_TERMINAL_SPEC
    assert {status for status, targets in RUN_SPEC.items() if not targets} == RUN_TERMINAL_SPEC


@pytest.mark.parametrize("current", sorted(RUN_TERMINAL_SPEC))
def test_a_terminal_run_refuses_every_ordinary_move(current: str) -> None:
    for target in RunStatus.values:
        with pytest.raises(TransitionError):
            check_run_transition(current, target)


def test_no_run_move_leads_back_to_queued_except_an_approval_an_answer_or_a_child() -> None:
    into_queued = {status for status, targets in RUN_TRANSITIONS.items() if "queued" in targets}
    assert into_queued == {"awaiting_approval", "awaiting_input", "awaiting_child"}


@pytest.mark.parametrize("pair", RUN_PAIRS, ids=pair_id)
def test_check_run_reopen_allows_only_the_specified_reopens(pair: tuple[str, str]) -> None:
    current, target = pair
    allowed = target in RUN_REOPEN_SPEC.get(current, set())
    assert (target in RUN_REOPEN.get(current, frozenset())) == allowed
    if allowed:
        check_run_reopen(current, target)
    else:
        with pytest.raises(TransitionError, match=f"from {current!r} to {target!r}"):
            check_run_reopen(current, target)


def test_only_an_escalated_run_reopens_and_never_to_a_finished_success() -> None:
    # ... and a succeeded child run, only to be rolled back with its parent.
    assert set(RUN_REOPEN) == {"escalated", "succeeded"}
    assert RUN_REOPEN["succeeded"] == {"rolling_back"}
    assert "succeeded" not in RUN_REOPEN["escalated"]
    # A reopen is the one way out of a terminal state; every other terminal stays shut.
    assert set(RUN_REOPEN) <= RUN_TERMINAL


# --------------------------------------------------------------------------- step table
@pytest.mark.parametrize("pair", STEP_PAIRS, ids=pair_id)
def test_the_step_table_allows_exactly_the_specified_moves(pair: tuple[str, str]) -> None:
    current, target = pair
    assert (target in STEP_TRANSITIONS[current]) == (target in STEP_SPEC[current])


@pytest.mark.parametrize("pair", STEP_PAIRS, ids=pair_id)
def test_check_step_transition_accepts_allowed_moves_and_refuses_every_other(
    pair: tuple[str, str],
) -> None:
    current, target = pair
    if target in STEP_SPEC[current]:
        check_step_transition(current, target)
        return
    with pytest.raises(TransitionError) as refused:
        check_step_transition(current, target, what="step 'a'")
    assert (refused.value.current, refused.value.target) == (current, target)
    assert str(refused.value) == f"step 'a' cannot go from {current!r} to {target!r}"


def test_finished_steps_leave_only_by_a_rollback_of_a_success() -> None:
    assert STEP_FINISHED == STEP_FINISHED_SPEC
    exits = {status: STEP_TRANSITIONS[status] for status in STEP_FINISHED}
    assert exits == {
        "succeeded": {"rolled_back"},
        "failed": frozenset(),
        "skipped": frozenset(),
        "cancelled": frozenset(),
        "rolled_back": frozenset(),
    }


def test_the_step_reopen_table_is_as_specified() -> None:
    assert {status: set(targets) for status, targets in STEP_REOPEN.items()} == STEP_REOPEN_SPEC
    for targets in STEP_REOPEN.values():
        assert targets <= set(StepStatus.values)
    # A reopen reaches a success or a rollback only for a rollback step marked done by hand
    # (failed -> succeeded) and the main step it undid (succeeded -> rolled_back).
    reached = {
        (s, t) for s, ts in STEP_REOPEN.items() for t in ts if t in ("succeeded", "rolled_back")
    }
    assert reached == {("failed", "succeeded"), ("succeeded", "rolled_back")}


STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def unsaved_step(status: str) -> Step:
    return Step(pk=1, key="a", phase="main", status=status, attempts=1, started_at=STARTED)


@pytest.mark.parametrize(
    "pair",
    [p for p in STEP_PAIRS if p[1] not in STEP_REOPEN_SPEC.get(p[0], set())],
    ids=pair_id,
)
def test_step_reopen_refuses_every_unspecified_pair_before_writing(
    pair: tuple[str, str],
) -> None:
    current, target = pair
    step = unsaved_step(current)
    with pytest.raises(TransitionError) as refused:
        step_reopen(step=step, to=target, reason="r", role="reviewer")
    assert (refused.value.current, refused.value.target) == (current, target)
    assert step.status == current  # nothing changed on the row either


@pytest.mark.parametrize(
    "pair",
    [(c, t) for c, targets in STEP_REOPEN_SPEC.items() for t in sorted(targets)],
    ids=pair_id,
)
def test_step_reopen_takes_every_specified_pair(
    pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    current, target = pair
    saved: list[list[str]] = []
    monkeypatch.setattr(Step, "save", lambda self, **kw: saved.append(kw["update_fields"]))
    step = unsaved_step(current)
    new = step_reopen(step=step, to=target, reason="retry", role="reviewer")
    assert step.status == target and saved and "status" in saved[0]
    assert (new.event.from_status, new.event.to_status) == (current, target)
    if target == "pending":  # back to the scheduler: as if it never started
        assert step.started_at is None and step.finished_at is None
    else:
        assert step.started_at == STARTED and step.finished_at is not None
