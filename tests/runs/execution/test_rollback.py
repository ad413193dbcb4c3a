"""The rollback phase: steps in order; the run ends rolled back, failed at a step, or escalated."""

from __future__ import annotations

import asyncio
from typing import Any

from runs.execution.rollback import Rollback
from runs.execution.run_state import RunState
from runs.execution.steps import Outcome, StepState
from tests.runs.execution.units import KeptJournal, RecordingSupervision, committer, step, tool


class ScriptedRunner:
    """Answers each rollback step with a scripted outcome and records the order of calls."""

    def __init__(self, outcomes: dict[str, Outcome]) -> None:
        self.outcomes = outcomes
        self.called: list[str] = []

    async def run_step(self, state: StepState, params: Any) -> Outcome:
        self.called.append(state.key)
        return self.outcomes.get(state.key, Outcome(True, result="undone"))


def _roll_back(
    run: RunState, runner: ScriptedRunner, *, escalate: str | None = None
) -> tuple[RecordingSupervision, KeptJournal]:
    supervision = RecordingSupervision()

    async def main() -> KeptJournal:
        c, journal = committer(run)
        rollback = Rollback(run, c, runner, supervision, asyncio.Event())  # type: ignore[arg-type]
        await rollback.execute("step a failed", escalate=escalate)
        return journal

    return supervision, asyncio.run(main())


def _run(main: list[StepState], rollback: list[StepState]) -> RunState:
    return RunState(1, "lease", status="rolling_back", main=main, rollback=rollback)


def test_rollback_steps_run_in_order_then_what_succeeded_is_rolled_back() -> None:
    done, failed = step("a", status="succeeded"), step("b", status="failed")
    r1, r2 = step("r1", phase="rollback"), step("r2", phase="rollback")
    run = _run([done, failed], [r1, r2])
    runner = ScriptedRunner({})
    _, journal = _roll_back(run, runner)
    assert runner.called == ["r1", "r2"]
    assert (done.status, failed.status, r1.status, r2.status) == (
        "rolled_back",
        "failed",
        "succeeded",
        "succeeded",
    )
    assert run.status == "rolled_back"
    assert journal.batches[-1].run is not None
    assert journal.batches[-1].run.stop_reason.endswith(
        "rolled back (2 rollback step(s) ran; undone: a)"
    )


def test_a_failed_rollback_step_lets_the_rest_run_then_escalates_rollback_incomplete() -> None:
    r1, r2, r3 = (step(k, phase="rollback") for k in ("r1", "r2", "r3"))
    run = _run([step("a", status="succeeded")], [r1, r2, r3])
    runner = ScriptedRunner({"r2": Outcome(False, error="cannot undo")})
    supervision, _ = _roll_back(run, runner)
    assert runner.called == ["r1", "r2", "r3"]
    assert (r2.status, r3.status, run.status) == ("failed", "succeeded", "escalated")
    assert run.main[0].status == "succeeded"  # nothing is claimed undone
    cause, reason, failed = supervision.escalations[0]
    assert (cause, failed) == ("rollback_incomplete", "r2")
    assert "r2 (t) failed: cannot undo" in reason and "undone: nothing" in reason


def test_a_non_idempotent_rollback_step_caught_mid_flight_counts_as_failed_not_rerun() -> None:
    caught = step("r1", phase="rollback", status="running", spec=tool(idempotent=False))
    again = step("r0", phase="rollback", status="running")  # idempotent: simply runs again
    run = _run([], [caught, again, step("r2", phase="rollback")])
    runner = ScriptedRunner({})
    supervision, _ = _roll_back(run, runner)
    assert runner.called == ["r0", "r2"] and run.status == "escalated"
    cause, reason, failed = supervision.escalations[0]
    assert (cause, failed, caught.status) == ("rollback_incomplete", "r1", "failed")
    assert "may have partly run" in reason


def test_a_rollback_step_caught_mid_flight_runs_again_when_its_tool_honours_the_key() -> None:
    honours = tool(idempotent=False, honours_idempotency_key=True)
    caught = step("r1", phase="rollback", status="running", spec=honours)
    run = _run([step("a", status="succeeded")], [caught])
    runner = ScriptedRunner({})
    supervision, _ = _roll_back(run, runner)
    assert runner.called == ["r1"] and supervision.escalations == []
    assert (caught.status, run.status) == ("succeeded", "rolled_back")


def test_a_finished_rollback_escalates_when_supervision_stopped_the_run() -> None:
    run = _run([step("a", status="succeeded")], [step("r1", phase="rollback")])
    supervision, _ = _roll_back(run, ScriptedRunner({}), escalate="budget_breached")
    assert [e[0] for e in supervision.escalations] == ["budget_breached"]
    assert run.main[0].status == "rolled_back" and run.status == "escalated"


def test_steps_already_rolled_back_by_an_earlier_worker_are_not_run_again() -> None:
    r1, r2 = step("r1", phase="rollback", status="succeeded"), step("r2", phase="rollback")
    runner = ScriptedRunner({})
    _roll_back(_run([], [r1, r2]), runner)
    assert runner.called == ["r2"]


def _compensate(
    run: RunState, runner: ScriptedRunner, seqs: dict[str, int], *, cancel: bool = False
) -> RecordingSupervision:
    supervision = RecordingSupervision()

    async def main() -> None:
        c, _ = committer(run)
        event = asyncio.Event()
        if cancel:
            event.set()
        rollback = Rollback(
            run,
            c,
            runner,  # type: ignore[arg-type]
            supervision,
            event,
            seqs=lambda run_id: seqs,
        )
        await rollback.execute("step z failed")

    asyncio.run(main())
    return supervision


def _undo(of: str) -> StepState:
    state = step(f"undo-{of}", phase="rollback")
    state.undoes = of
    return state


def test_undos_start_latest_completed_first_and_wait_for_their_dependents_undos() -> None:
    a, c = step("a", status="succeeded"), step("c", status="succeeded")
    b = step("b", "a", status="succeeded")
    run = _run([a, b, c, step("z", status="failed")], [_undo("a"), _undo("b"), _undo("c")])
    runner = ScriptedRunner({})
    _compensate(run, runner, {"a": 10, "c": 15, "b": 20})
    assert runner.called == ["undo-b", "undo-c", "undo-a"]
    assert (a.status, b.status, c.status, run.status) == (
        "rolled_back",
        "rolled_back",
        "rolled_back",
        "rolled_back",
    )


def test_a_failing_undo_skips_only_the_undos_waiting_for_it_then_escalates() -> None:
    a, c = step("a", status="succeeded"), step("c", status="succeeded")
    b = step("b", "a", status="succeeded")
    undos = [_undo("a"), _undo("b"), _undo("c")]
    run = _run([a, b, c], undos)
    runner = ScriptedRunner({"undo-b": Outcome(False, error="still deployed")})
    supervision = _compensate(run, runner, {"a": 10, "c": 15, "b": 20})
    assert runner.called == ["undo-b", "undo-c"]
    assert [u.status for u in undos] == ["skipped", "failed", "succeeded"]
    assert (a.status, b.status, c.status) == ("succeeded", "succeeded", "rolled_back")
    cause, reason, failed = supervision.escalations[0]
    assert (cause, failed, run.status) == ("rollback_incomplete", "undo-b", "escalated")
    assert "not run: undo-a" in reason and "undone: c" in reason


def test_read_only_steps_and_linked_steps_are_not_labelled_by_the_plans_rollback() -> None:
    read = step("read_schema", status="succeeded", spec=tool(read_only=True))
    deploy = step("deploy", status="succeeded")
    linked = step("rollback-1", phase="rollback")
    linked.undoes = "deploy"
    plain = step("rollback-2", phase="rollback")
    run = _run([read, deploy, step("z", status="failed")], [linked, plain])
    runner = ScriptedRunner({"rollback-1": Outcome(False, error="no")})
    _compensate(run, runner, {})
    assert runner.called == ["rollback-1", "rollback-2"]
    # rollback-2 (unlinked) succeeded, but deploy has its own link (failed), read_schema only reads
    assert (read.status, deploy.status, run.status) == ("succeeded", "succeeded", "escalated")


def test_a_rollback_step_linked_to_a_step_that_failed_is_skipped() -> None:
    deploy = step("deploy_production", status="failed")
    tests = step("run_tests", status="succeeded")
    linked = step("rollback-1", phase="rollback")
    linked.undoes = "deploy_production"
    plain = step("rollback-2", phase="rollback")
    run = _run([tests, deploy], [linked, plain])
    runner = ScriptedRunner({})
    _compensate(run, runner, {})
    assert runner.called == ["rollback-2"]
    assert (linked.status, plain.status, run.status) == ("skipped", "succeeded", "rolled_back")
    assert (tests.status, deploy.status) == ("rolled_back", "failed")


def test_a_cancel_that_asks_for_the_rollback_does_not_stop_it() -> None:
    run = _run([step("a", status="succeeded")], [_undo("a")])
    run.cancel_rollback, run.cancel_by, run.cancel_reason = True, "olga", "wrong build"
    runner = ScriptedRunner({})
    _compensate(run, runner, {"a": 1}, cancel=True)
    assert runner.called == ["undo-a"] and run.status == "rolled_back"


def test_a_plain_cancel_stops_the_rollback() -> None:
    run = _run([step("a", status="succeeded")], [_undo("a"), step("rollback-1", phase="rollback")])
    runner = ScriptedRunner({})
    _compensate(run, runner, {"a": 1}, cancel=True)
    assert runner.called == [] and run.status == "cancelled"
    assert [s.status for s in run.rollback] == ["cancelled", "cancelled"]
