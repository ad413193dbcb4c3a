"""Run-level planning services: submit a task for planning, and plan a queued run.

``run_plan`` is the planning half of a run's life:
1. claim: ``queued → planning`` by compare-and-swap (of two workers, one plans);
2. ask the planner, outside any transaction (network calls take seconds);
3. in one transaction: every model call (``LlmCall`` + ``planner.call`` event),
   the plan version (source=planner), the decision, and ``planning → executing``,
   then hand the run to the executor; or ``planning → escalated`` with a reason
   when no valid plan came out (repair exhausted, refusal, provider down, no
   playbook match: the operator then submits a hand-written plan).
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from runs.events import PlannerDecision, RunCreated
from runs.models import Plan, Run, RunStatus, Task, TranscriptEvent
from runs.planning.accounting import record_calls, run_llm_totals
from runs.planning.options import default_options, task_options
from runs.planning.planner import PlanOutcome, plan_task
from runs.planning.prompt import context_for
from runs.statemachine import NewEvent, TransitionError, append_events, run_transition

log = logging.getLogger(__name__)
PLANNER = TranscriptEvent.Role.PLANNER
SUPERVISOR = TranscriptEvent.Role.SUPERVISOR


@transaction.atomic
def run_submit_task(
    *,
    title: str,
    submitted_by: AbstractBaseUser | None,
    description: str = "",
    planner: str = "",
    model: str = "",
    mode: str = "",
    temperature: float | None = None,
    max_tokens: int | None = None,
    max_replans: int | None = None,
    max_parallel: int | None = None,
) -> Run:
    """Create a task and a queued run that a planner will plan; raises PlannerOptionsError.

    The options are resolved against the deployment defaults now and stored on
    the task, so a later settings change does not alter a submitted task.
    """
    from django.conf import settings

    from runs.dispatch import enqueue_run

    options = default_options(
        planner=planner,
        model=model,
        mode=mode,
        temperature=temperature,
        max_tokens=max_tokens,
        max_replans=max_replans,
    )
    task = Task.objects.create(
        title=title,
        description=description,
        submitted_by=submitted_by,
        planner=options.planner,
        model=options.model,
        mode=options.mode,
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        max_replans=options.max_replans,
    )
    run = Run.objects.create(
        task=task, max_parallel=max_parallel or settings.PLANNERWEB_DEFAULT_MAX_PARALLEL
    )
    by = submitted_by.get_username() if submitted_by is not None else None
    append_events(
        run.pk, [NewEvent(TranscriptEvent.Role.SYSTEM, RunCreated(task=title, submitted_by=by))]
    )
    enqueue_run(run.pk)
    return run


def run_needs_planning(run_id: int) -> bool:
    """A queued run of a planner task that has no plan yet (hand-written plans never need one)."""
    return (
        Run.objects.filter(
            pk=run_id, status=RunStatus.QUEUED, current_plan__isnull=True, plans__isnull=True
        )
        .exclude(task__planner="")
        .exists()
    )


def run_plan(*, run_id: int) -> str:
    """Plan a queued run (see the module docstring); returns the run's status afterwards."""
    try:
        # Locks the row and checks the status: of two workers, only one moves it to planning.
        run_transition(run_id=run_id, to=RunStatus.PLANNING, reason="planning", role=PLANNER)
    except TransitionError:
        return Run.objects.values_list("status", flat=True).get(pk=run_id)
    run = Run.objects.select_related("task").get(pk=run_id)
    try:
        options = task_options(run.task)
        context = context_for(
            task=run.task.title,
            description=run.task.description,
            mode=options.mode,
            max_parallel=run.max_parallel,
            max_replans=options.max_replans,
        )
        outcome = plan_task(context, options)
    except Exception as exc:  # a planner bug must stop this run clearly, not kill the worker
        log.exception("planning run %s failed", run_id)
        outcome = PlanOutcome(
            ok=False, planner=run.task.planner, mode=run.task.mode, reason=f"planner error: {exc}"
        )
    return plan_store(run_id=run_id, outcome=outcome, source=Plan.Source.PLANNER)


@transaction.atomic
def plan_store(
    *, run_id: int, outcome: PlanOutcome, source: str, parent: Plan | None = None
) -> str:
    """Store a planning outcome on a ``planning`` run and move it on; returns the new status."""
    from runs.dispatch import enqueue_run
    from runs.services import plan_create

    run = Run.objects.get(pk=run_id)
    events = record_calls(run_id=run_id, calls=outcome.calls)
    append_events(run_id, events)
    plan = None
    if outcome.document is not None:
        plan = plan_create(
            run=run,
            document=outcome.document,
            source=source,
            parent=parent,
            validated=outcome.validated,
        )
        call_ids = [e.event.call_id for e in events]  # type: ignore[attr-defined]
        run.llm_calls.filter(pk__in=call_ids).update(plan=plan)
    ok = outcome.ok and plan is not None and plan.is_valid
    totals = run_llm_totals(run_id)
    append_events(
        run_id,
        [
            NewEvent(
                PLANNER,
                PlannerDecision(
                    planner=outcome.planner,
                    mode=outcome.mode,
                    ok=ok,
                    confidence=outcome.confidence,
                    detail=outcome.reason,
                    totals=totals.as_dict() if totals.calls else {},
                ),
            )
        ],
    )
    if ok:
        assert plan is not None
        run_transition(
            run_id=run_id,
            to=RunStatus.EXECUTING,
            reason=f"plan v{plan.version} from {outcome.planner} ({outcome.mode})",
            role=PLANNER,
        )
        enqueue_run(run_id)
        return RunStatus.EXECUTING
    run_transition(
        run_id=run_id,
        to=RunStatus.ESCALATED,
        reason=outcome.reason or "the planner produced no valid plan",
        role=SUPERVISOR,
    )
    return RunStatus.ESCALATED
