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
    assert journal.batches[-1].run.stop_reason.endswith("rolled back (2 rollback step(s) ran)")


def test_a_failed_rollback_step_skips_the_rest_and_fails_the_run() -> None:
    r1, r2, r3 = (step(k, phase="rollback") for k in ("r1", "r2", "r3"))
    run = _run([step("a", status="succeeded")], [r1, r2, r3])
    runner = ScriptedRunner({"r2": Outcome(False, error="cannot undo")})
    _roll_back(run, runner)
    assert runner.called == ["r1", "r2"]
    assert (r2.status, r3.status, run.status) == ("failed", "skipped", "failed")
    assert run.main[0].status == "succeeded"  # nothing is claimed undone


def test_a_non_idempotent_rollback_step_caught_mid_flight_escalates() -> None:
    caught = step("r1", phase="rollback", status="running", spec=tool(idempotent=False))
    run = _run([], [caught])
    runner = ScriptedRunner({})
    supervision, _ = _roll_back(run, runner)
    assert runner.called == [] and run.status == "escalated"
    assert supervision.escalations[0][0] == "partial_run" and supervision.escalations[0][2] == "r1"


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
