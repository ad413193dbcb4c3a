"""Run-level planning services: submit a task for planning, and plan a queued run.

``run_plan`` is the planning half of a run's life:
1. claim: ``queued → planning`` by compare-and-swap (of two workers, one plans),
   with a lease the worker renews while the model works (``holding_lease``);
   a run whose planning worker died is planned again by the next one, at most
   ``PLANNERWEB_MAX_PLANNING_ATTEMPTS`` times in all (then ``planner_failed``);
2. ask the planner, outside any transaction (network calls take seconds); each
   model call is stored (``LlmCall`` + ``planner.call`` event) as it returns;
3. in one transaction: any call not stored yet, the plan version
   (source=planner), the decision, and ``planning → executing``, then hand the
   run to the executor; or ``planning → escalated`` with a reason when no valid
   plan came out (repair exhausted, refusal, provider down, no playbook match:
   the operator then submits a hand-written plan). An outcome that fails to
   store escalates too (``plan_store_failed``), never to be planned again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import copy_context
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from reviews.models import EscalationCause
from runs.dbthreads import closing_connections
from runs.events import HandoffTaken, PlannerDecision, RunCreated
from runs.execution.budgets import budget_overrides, task_budgets_set
from runs.lifecycle.confirmation import confirm_choice, planned_plan_hold
from runs.lifecycle.dispatch import enqueue_run
from runs.lifecycle.escalations import escalation_for_planning
from runs.lifecycle.intake import max_parallel_check
from runs.lifecycle.leases import lease_token, worker_identity
from runs.lifecycle.questions import clarifications_of, question_open, questions_left
from runs.lifecycle.retention import retain_days_check
from runs.lifecycle.submit import plan_create, task_text_store
from runs.lifecycle.traces import traced_run
from runs.models import Plan, Run, RunStatus, Task, TranscriptEvent
from runs.planning.accounting import LlmTotals, record_calls, run_llm_totals
from runs.planning.attempts import CALL_SINK, CallRecord, PlanOutcome
from runs.planning.iterative import step_event
from runs.planning.options import default_options, task_options
from runs.planning.planner import plan_task
from runs.planning.prompt import context_for
from runs.statemachine import LeaseLost, NewEvent, append_events, lock_rows, run_transition
from runs.textdata import storable_text

log = logging.getLogger(__name__)
T = TypeVar("T")
PLANNER = TranscriptEvent.Role.PLANNER
SUPERVISOR = TranscriptEvent.Role.SUPERVISOR


@transaction.atomic
def run_submit_task(
    *,
    title: str,
    submitted_by: User | None,
    description: str = "",
    planner: str = "",
    model: str = "",
    mode: str = "",
    temperature: float | None = None,
    max_tokens: int | None = None,
    max_replans: int | None = None,
    max_parallel: int | None = None,
    max_steps: int | None = None,
    budgets: dict[str, Any] | None = None,
    retain_days: int | None = None,
    confirm_plan: str | None = None,
) -> Run:
    """Create a task and a queued run that a planner will plan.

    Raises ``PlannerOptionsError``, or ``MaxParallelError`` for a ``max_parallel`` out
    of range (None: the default), before anything is written. The options are resolved
    against the deployment defaults now and stored on the task, so a later settings
    change does not alter a submitted task.
    ``confirm_plan`` (auto, always, never; ``ConfirmChoiceError`` otherwise): whether
    the plan waits for the submitter's confirmation (``runs.lifecycle.confirmation``).
    """
    parallel = max_parallel_check(max_parallel)
    options = default_options(
        planner=planner,
        model=model,
        mode=mode,
        temperature=temperature,
        max_tokens=max_tokens,
        max_replans=max_replans,
        max_steps=max_steps,
    )
    task = Task.objects.create(
        submitted_by=submitted_by,
        planner=options.planner,
        model=options.model,
        mode=options.mode,
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        max_replans=options.max_replans,
        max_steps=options.max_steps,
        retain_days=retain_days_check(retain_days),
        confirm_plan=confirm_choice(confirm_plan),
    )
    task_budgets_set(task=task, overrides=budget_overrides(budgets or {}), actor=submitted_by)
    run = Run.objects.create(task=task, max_parallel=parallel)
    title, description = task_text_store(task=task, run=run, title=title, description=description)
    by = submitted_by.get_username() if submitted_by is not None else None
    append_events(
        run.pk, [NewEvent(TranscriptEvent.Role.SYSTEM, RunCreated(task=title, submitted_by=by))]
    )
    enqueue_run(run.pk)
    return run


def run_needs_planning(run_id: int) -> bool:
    """A planner task's run with no plan yet: queued, or planning under a lapsed lease.

    Hand-written plans never need one. A ``planning`` run whose lease lapsed lost
    its worker mid-call; model calls have no side effects, so it is planned again.
    """
    lapsed = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=timezone.now())
    return (
        Run.objects.filter(
            Q(status=RunStatus.QUEUED) | (Q(status=RunStatus.PLANNING) & lapsed),
            pk=run_id,
            current_plan__isnull=True,
        )
        .exclude(task__planner="")
        .exists()
    )


def planning_claim(*, run_id: int, worker_id: str) -> str | None:
    """Take a run for planning (``queued → planning``, or a lapsed ``planning``); its lease token.

    None when another worker has it. The row lock (the write lock on SQLite)
    makes this a compare-and-swap: of two workers, one plans.
    """

    token = lease_token(worker_id)
    now = timezone.now()
    until = now + timedelta(seconds=settings.PLANNERWEB_HEARTBEAT_SECONDS * 5)
    with transaction.atomic():
        run = lock_rows(Run.objects.filter(pk=run_id)).first()
        if run is None:
            return None
        if run.status == RunStatus.QUEUED:
            run_transition(
                run_id=run_id,
                to=RunStatus.PLANNING,
                reason=f"planning ({worker_id})",
                role=PLANNER,
                lease_owner=token,
                lease_expires_at=until,
                planning_attempts=1,
            )
            return token
        lapsed = run.lease_expires_at is None or run.lease_expires_at < now
        if run.status == RunStatus.PLANNING and lapsed:
            limit = settings.PLANNERWEB_MAX_PLANNING_ATTEMPTS
            if run.planning_attempts >= limit:
                planning_give_up(
                    run_id=run_id,
                    reason=f"planning was attempted {run.planning_attempts} times (the limit is "
                    f"{limit}) and never finished: its worker stopped or its plan could not be "
                    "stored each time",
                )
                return None
            Run.objects.filter(pk=run_id).update(
                lease_owner=token,
                lease_expires_at=until,
                planning_attempts=F("planning_attempts") + 1,
            )
            return token
        return None


def planning_give_up(*, run_id: int, reason: str, calls: list[Any] | None = None) -> None:
    """``planning → escalated`` with cause ``planner_failed``, recording ``calls`` first.

    The way out for a run planning cannot finish: it is never planned again
    unless a reviewer retries it.
    """
    with transaction.atomic():
        append_events(run_id, record_calls(run_id=run_id, calls=calls or []))
        run_transition(
            run_id=run_id,
            to=RunStatus.ESCALATED,
            reason=reason,
            role=SUPERVISOR,
            lease_owner="",
            lease_expires_at=None,
        )
        escalation_for_planning(
            run_id=run_id, reason=reason, failure=EscalationCause.PLANNER_FAILED
        )


def run_plan(*, run_id: int, worker_id: str = "") -> str:
    """Plan a queued run (see the module docstring); returns the run's status afterwards."""

    token = planning_claim(run_id=run_id, worker_id=worker_id or worker_identity())
    if token is None:
        return Run.objects.values_list("status", flat=True).get(pk=run_id)
    run = Run.objects.select_related("task").get(pk=run_id)

    def plan() -> PlanOutcome:
        sink = CALL_SINK.set(lambda record: planning_call_store(run_id=run_id, record=record))
        try:
            return plan_for(run)
        finally:
            CALL_SINK.reset(sink)

    with traced_run(run_id, phase="plan"):
        return _plan_and_store(run, token, plan)


def _plan_and_store(run: Run, token: str, plan: Callable[[], PlanOutcome]) -> str:
    """``run_plan`` once claimed: plan while holding the lease, then store the outcome."""
    run_id = run.pk
    try:
        outcome = holding_lease(run_id=run_id, fence=token, work=plan)
    except LeaseLost:
        return Run.objects.values_list("status", flat=True).get(pk=run_id)
    except Exception as exc:  # a planner bug must stop this run clearly, not kill the worker
        log.exception("planning run %s failed", run_id)
        outcome = PlanOutcome(
            ok=False, planner=run.task.planner, mode=run.task.mode, reason=f"planner error: {exc}"
        )
    try:
        return plan_store(run_id=run_id, outcome=outcome, source=Plan.Source.PLANNER, fence=token)
    except LeaseLost:  # another worker took over while the model was thinking: its result counts
        return Run.objects.values_list("status", flat=True).get(pk=run_id)
    except DatabaseError as exc:  # never planned again for the same failure: escalate instead
        log.exception("storing the plan of run %s failed", run_id)
        return plan_store_failed(run_id=run_id, outcome=outcome, fence=token, error=exc)


def _call_ids(events: list[NewEvent], outcome: PlanOutcome) -> list[int]:
    """The outcome's ``LlmCall`` rows: those stored now (``events``) and those stored earlier."""
    ids = [e.event.call_id for e in events]  # type: ignore[attr-defined]
    return ids + [c.stored_id for c in outcome.calls if c.stored_id is not None]


def plan_store_failed(*, run_id: int, outcome: PlanOutcome, fence: str, error: Exception) -> str:
    """The planner's calls, kept, and the run escalated when its outcome could not be stored."""
    with transaction.atomic():
        run = lock_rows(Run.objects.filter(pk=run_id)).get()
        if run.lease_owner != fence or run.status != RunStatus.PLANNING:
            return run.status
        planning_give_up(
            run_id=run_id,
            reason=f"the planner's outcome could not be stored: {storable_text(str(error))[:500]}",
            calls=outcome.calls,
        )
    return RunStatus.ESCALATED


def plan_for(run: Run) -> PlanOutcome:
    """Ask the task's planner for a plan (the network calls; no transaction is open)."""
    options = task_options(run.task)
    context = context_for(
        task=run.task.title,
        description=run.task.description,
        mode=options.mode,
        max_parallel=run.max_parallel,
        max_replans=options.max_replans,
        clarifications=clarifications_of(run.pk),
        may_ask=questions_left(run.pk) > 0,
    )
    return plan_task(context, options)


def planning_call_store(*, run_id: int, record: CallRecord) -> None:
    """Store one model call (``LlmCall`` and ``planner.call``) the moment it returns.

    Best effort: when it cannot be stored now, ``plan_store`` stores it with the
    outcome, as it does every call this did not store.
    """
    try:
        with transaction.atomic():
            events = record_calls(run_id=run_id, calls=[record])
            append_events(run_id, events)
    except Exception:  # never a reason to stop planning: plan_store stores the call instead
        log.warning("model call of run %s not stored yet; it is stored with the plan", run_id)
        return
    record.stored_id = events[0].event.call_id  # type: ignore[attr-defined]


def holding_lease(*, run_id: int, fence: str, work: Callable[[], T]) -> T:
    """Run ``work`` in a helper thread, renewing the run's lease until it returns.

    Model calls take seconds to minutes, far longer than a lease: renewing it
    here keeps the lease short, so a dead worker's run is taken over quickly.
    Raises ``LeaseLost`` (leaving ``work`` to finish unobserved) if the lease
    passed to another worker meanwhile.
    """
    beat = settings.PLANNERWEB_HEARTBEAT_SECONDS

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"plan-{run_id}")
    try:
        future = pool.submit(copy_context().run, closing_connections(work))  # log ids, span
        while True:
            try:
                return future.result(timeout=beat)
            except FutureTimeout:
                until = timezone.now() + timedelta(seconds=beat * 5)
                if not Run.objects.filter(pk=run_id, lease_owner=fence).update(
                    lease_expires_at=until
                ):
                    raise LeaseLost(f"run {run_id}: lease lost while planning") from None
    finally:
        pool.shutdown(wait=False)


def _decision(outcome: PlanOutcome, ok: bool, totals: LlmTotals) -> PlannerDecision:
    """The ``planner.decision`` event: who planned, how sure, what it reused or substituted."""
    return PlannerDecision(
        planner=outcome.planner,
        mode=outcome.mode,
        ok=ok,
        confidence=outcome.confidence,
        detail=outcome.reason,
        totals=totals.as_dict() if totals.calls else {},
        substitutions=outcome.substitutions if ok else [],
        reused_from=outcome.reused_from if ok else "",
        saved_tokens=outcome.saved_tokens if ok else 0,
    )


@transaction.atomic
def plan_store(
    *,
    run_id: int,
    outcome: PlanOutcome,
    source: str,
    parent: Plan | None = None,
    fence: str | None = None,
) -> str:
    """Store a planning outcome on a ``planning`` run and move it on; returns the new status.

    With ``fence`` (the planning lease), raises ``LeaseLost`` and writes nothing
    when another worker has taken the run over.
    """
    run = lock_rows(Run.objects.filter(pk=run_id)).get()
    if fence is not None and run.lease_owner != fence:
        raise LeaseLost(f"run {run_id} is being planned by {run.lease_owner or 'nobody'!r} now")
    events = record_calls(run_id=run_id, calls=outcome.calls)
    append_events(run_id, events)
    if outcome.question is not None and outcome.document is None:
        return question_open(run=run, question=outcome.question, planner=outcome.planner)
    plan = None
    if outcome.document is not None:
        plan = plan_create(
            run=run,
            document=outcome.document,
            source=source,
            parent=parent,
            validated=outcome.validated,
        )
        run.llm_calls.filter(pk__in=_call_ids(events, outcome)).update(plan=plan)
    ok = outcome.ok and plan is not None and plan.is_valid
    if outcome.step is not None:  # iterative mode: the first step, or a stop before any
        append_events(run_id, [step_event(outcome, number=1, plan=plan if ok else None)])
        if outcome.stop and plan is None:
            outcome.reason = f"the planner stopped before taking any step: {outcome.reason}"
    if outcome.handoff and ok:
        append_events(run_id, [NewEvent(PLANNER, HandoffTaken(**outcome.handoff))])
    append_events(run_id, [NewEvent(PLANNER, _decision(outcome, ok, run_llm_totals(run_id)))])
    if ok:
        assert plan is not None
        if outcome.step is None:  # iterative mode has no whole plan to show before it runs
            held = planned_plan_hold(run=run, plan=plan, confidence=outcome.confidence)
            if held is not None:
                return held
        run_transition(
            run_id=run_id,
            to=RunStatus.EXECUTING,
            reason=f"plan v{plan.version} from {outcome.planner} ({outcome.mode})",
            role=PLANNER,
            # The executor's worker takes its own lease (run_claim takes an unleased run).
            lease_owner="",
            lease_expires_at=None,
        )
        enqueue_run(run_id)
        return RunStatus.EXECUTING
    run_transition(
        run_id=run_id,
        to=RunStatus.ESCALATED,
        reason=outcome.reason or "the planner produced no valid plan",
        role=SUPERVISOR,
    )

    escalation_for_planning(
        run_id=run_id,
        reason=outcome.reason or "the planner produced no valid plan",
        problems=outcome.validated.problems if outcome.validated is not None else (),
        failure=outcome.failure,
    )
    return RunStatus.ESCALATED
