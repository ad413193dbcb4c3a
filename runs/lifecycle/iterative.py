"""The iterative loop: after each finished step, ask the planner for the next one (or a stop)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runs.lifecycle.adoption import (
    ReplanResult,
    kept_steps,
    plan_adopt,
    plan_hold,
    replan_give_up,
    replan_store_failed,
)
from runs.lifecycle.questions import clarifications_of, question_open, questions_left
from runs.models import Plan, Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.planning.accounting import record_calls
from runs.planning.attempts import PlanOutcome
from runs.planning.iterative import PLANNER, log, step_event
from runs.planning.options import PlannerOptions, task_options
from runs.planning.planner import plan_task
from runs.planning.prompt import (
    IterationContext,
    context_for,
)
from runs.selectors import steps_taken
from runs.statemachine import LeaseLost, append_events, run_transition


def next_step_after_success(*, run_id: int, fence: str | None = None) -> IterationResult:
    """The current version's steps all succeeded: finish, or adopt the next step; never raises."""
    try:
        return _after_success(run_id, fence)
    except LeaseLost as exc:
        return IterationResult("lost", str(exc))
    except Exception as exc:  # the executor must still be able to close the run
        log.exception("asking for the next step of run %s failed", run_id)
        return IterationResult("fail", f"asking the planner for the next step failed: {exc}")


def _after_success(run_id: int, fence: str | None) -> IterationResult:

    run = Run.objects.select_related("task", "current_plan").get(pk=run_id)
    options = task_options(run.task)
    old = run.current_plan
    assert old is not None
    last = (
        TranscriptEvent.objects.filter(run_id=run_id, kind="planner.step")
        .order_by("-seq")
        .values_list("payload", flat=True)
        .first()
    )
    if last and last.get("stop") and last.get("version") == old.version:
        return IterationResult("finish", "the planner's last step was marked stop")
    taken = steps_taken(run_id)
    if taken >= options.max_steps:
        return IterationResult(
            "fail", f"max steps reached ({taken} of {options.max_steps}) without the planner's stop"
        )
    steps = _main_steps(old)
    outcome = _ask(run, options, steps, number=taken + 1, purpose="step", may_ask=True)
    if outcome.ok and outcome.document is not None:
        plan_adopt(run_id, old, outcome, steps, fence, source=Plan.Source.PLANNER, resume=False)
        return IterationResult("continue")
    from django.db import transaction

    with transaction.atomic():
        held = plan_hold(run_id, fence)
        append_events(run_id, record_calls(run_id=run_id, calls=outcome.calls))
        if outcome.question is not None and outcome.document is None:
            # The run waits for the answer holding no worker; answered, it is queued and
            # the executor that claims it asks the planner again (every answer included).
            question_open(run=held, question=outcome.question, planner=outcome.planner)
            return IterationResult("ask", outcome.reason)
        if outcome.ok:  # stop
            append_events(run_id, [step_event(outcome, number=taken + 1)])
    if outcome.ok:
        return IterationResult("finish", outcome.reason)
    return IterationResult("fail", f"no valid step {taken + 1}: {outcome.reason}")


def next_step_after_failure(*, run_id: int, failure: str, fence: str | None) -> ReplanResult:
    """A step failed: the model sees the error and picks the next step (one replan each)."""

    run = Run.objects.select_related("task", "current_plan").get(pk=run_id)
    options = task_options(run.task)
    old = run.current_plan
    assert old is not None
    steps = _main_steps(old)
    if not any(s.status == StepStatus.FAILED for s in steps):
        return ReplanResult(False)  # the loop itself stopped (max steps, no valid step): no retry
    used = run.plans.filter(source=Plan.Source.REPLANNER).count()
    if used >= options.max_replans:
        return replan_give_up(
            run_id, f"replans exhausted ({used} of {options.max_replans})", used, steps, fence
        )
    taken = steps_taken(run_id)
    if taken >= options.max_steps:
        return replan_give_up(
            run_id, f"max steps reached ({taken} of {options.max_steps})", used, steps, fence
        )
    if run.status != RunStatus.REPLANNING:
        run_transition(
            run_id=run_id,
            to=RunStatus.REPLANNING,
            reason=f"replan {used + 1} of {options.max_replans} after: {failure}",
            role=PLANNER,
            fence=fence,
        )
    outcome = _ask(run, options, steps, number=taken + 1, purpose="replan", failure=failure)
    if outcome.ok and outcome.document is not None:
        plan_adopt(run_id, old, outcome, steps, fence)
        return ReplanResult(True)
    if outcome.ok:  # stop: the model gives the task up after the failure
        outcome.reason = f"the planner stopped after the failure ({outcome.reason})"
    return replan_store_failed(run_id, old, outcome, used + 1, steps, fence)


def _main_steps(plan: Plan) -> list[Step]:
    return list(plan.steps.filter(phase=Step.Phase.MAIN).order_by("position"))


def run_history(run_id: int) -> list[dict[str, Any]]:
    """Every step that finished (across versions, once each), oldest first, with its outcome."""
    seen: set[str] = set()
    history = []
    rows = Step.objects.filter(
        run_id=run_id,
        phase=Step.Phase.MAIN,
        status__in=[StepStatus.SUCCEEDED, StepStatus.FAILED],
    ).order_by("finished_at", "id")
    for s in rows:
        if s.key in seen:
            continue
        seen.add(s.key)
        item: dict[str, Any] = {
            "id": s.key,
            "tool": s.tool_name,
            "arguments": s.params,
            "status": s.status,
        }
        if s.status == StepStatus.SUCCEEDED:
            item["result"] = s.result
        else:
            item["error"] = s.error
        history.append(item)
    return history


def _ask(
    run: Run,
    options: PlannerOptions,
    steps: list[Step],
    *,
    number: int,
    purpose: str,
    failure: str = "",
    may_ask: bool = False,
) -> PlanOutcome:
    """The planner's next step; after a success it may ask instead while questions are left."""
    kept = kept_steps(steps)
    context = context_for(
        task=run.task.title,
        description=run.task.description,
        mode="iterative",
        max_parallel=run.max_parallel,
        max_replans=options.max_replans,
        iteration=IterationContext(
            history=run_history(run.pk),
            number=number,
            max_steps=options.max_steps,
            failure=failure,
        ),
        clarifications=clarifications_of(run.pk),
        may_ask=may_ask and questions_left(run.pk) > 0,
    )
    return plan_task(context, options, purpose=purpose, kept=kept)


@dataclass(frozen=True)
class IterationResult:
    # continue (a new step is current) | finish (stop) | fail | lost (lease)
    # | ask (the planner asked a question: the run waits ``awaiting_input``)
    action: str
    reason: str = ""
