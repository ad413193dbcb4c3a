"""Engine-side review items: gated low-confidence steps and escalations, and their decisions.

The engine's supervision (``runs.lifecycle.supervision``) calls ``step_gate_open`` when a gated
step is reached and ``escalation_open`` when it gives up (in the same
transaction as the run's stop); a reviewer's decision comes back as a
``Resolution`` and ``runs.lifecycle.resume`` carries it out in the decision's
transaction: steps and run reopened, ``runs.tasks.resume_run`` enqueued on commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.urls import reverse

from reviews.actions import allowed_actions
from reviews.decisions import (
    REVIEWER,
    Binding,
    check_assignee,
    check_binding,
    check_checklist,
    decided_event,
    gate_params,
    item_audit,
    item_state,
    locked_item,
    require_reviewer,
    review_open,
)
from reviews.models import EscalationAction, EscalationCause, ReviewItem, ReviewKind, ReviewStatus
from reviews.policies import step_needs_gate
from reviews.statemachine import (
    ActionNotAllowed,
    DecisionInputInvalid,
    NotAllowed,
    ReviewError,
    review_transition,
)
from runs.execution.budgets import (
    BudgetRaiseError,
    budget_overrides,
    run_usage,
    task_budgets_raise,
)
from runs.lifecycle.cancel import run_stop
from runs.lifecycle.resume import ResumeRefused, run_resume
from runs.lifecycle.reviews import plan_validate_edit
from runs.lifecycle.submit import plan_create
from runs.models import Plan, Run, RunStatus, Step, Task
from runs.plan_versions import content_hash
from runs.planning.attempts import NO_MATCH
from runs.statemachine import append_events, lock_rows

__all__ = [
    "Resolution",
    "escalation_for_planning",
    "escalation_open",
    "gate_resolution",
    "gate_still_bound",
    "review_resolve_escalation",
    "step_gate_open",
    "step_needs_gate",
]


@dataclass(frozen=True)
class Resolution:
    """What the run should do after a decision: the executor acts on ``action``."""

    item_id: int
    run_id: int
    action: str  # run | skip | retry | edit | write_plan | raise_budget | rollback | abort
    step_id: int | None = None
    plan_id: int | None = None  # the plan to continue with (an edit's new version)


@transaction.atomic
def escalation_open(
    *,
    run_id: int,
    cause: str,
    reason: str,
    context: dict[str, Any] | None = None,
    step_id: int | None = None,
    hold_run: bool = False,
) -> ReviewItem:
    """Hand a stuck run to a reviewer, with the failure report and a link to the transcript.

    ``hold_run=True`` also moves the run to ``awaiting_approval`` (releasing its
    lease); an executor that records the run's status itself passes False.
    """
    if cause not in EscalationCause.values:
        raise ValueError(f"unknown escalation cause {cause!r}")
    run = Run.objects.select_related("current_plan").get(pk=run_id)
    full_context = {
        **(context or {}),
        "transcript_url": reverse("runs:detail", kwargs={"run_id": run_id}),
    }
    return review_open(
        run=run,
        kind=ReviewKind.ESCALATION,
        reason=reason,
        cause=cause,
        plan=run.current_plan,
        step_id=step_id,
        context=full_context,
        hold_run=hold_run,
    )


@transaction.atomic
def step_gate_open(*, step_id: int, threshold: float) -> ReviewItem:
    """Pause one low-confidence step on a sensitive tool; the rest of the run keeps going."""
    step = Step.objects.select_related("run", "plan").get(pk=step_id)
    confidence = "unknown" if step.confidence is None else f"{step.confidence:g}"
    # The reviewer sees, and the decision binds to, the params exactly as they will run.
    params = gate_params(step)
    return review_open(
        run=step.run,
        kind=ReviewKind.STEP_GATE,
        reason=(
            f"step {step.key!r} on sensitive tool {step.tool_name!r} has confidence "
            f"{confidence}, below {threshold:g}"
        ),
        cause=EscalationCause.LOW_CONFIDENCE,
        plan=step.plan,
        step_id=step.pk,
        context={"params": params, "confidence": step.confidence, "threshold": threshold},
        params_hash=content_hash(params),
    )


def gate_still_bound(item: ReviewItem) -> bool:
    """Whether the gated step would still run with the params its gate item was decided on."""
    if not item.params_hash or item.step is None:
        return True
    return content_hash(gate_params(item.step)) == item.params_hash


def gate_resolution(item: ReviewItem) -> Resolution | None:
    """For a step gate: None while open, else run the step, skip it, or abort the run."""
    if item.status == ReviewStatus.OPEN:
        return None
    if item.status == ReviewStatus.APPROVED:
        action = "run"
    elif item.status == ReviewStatus.REJECTED or item.decision == "auto_reject":
        action = "skip"
    else:
        action = "abort"
    return Resolution(item.pk, item.run_id, action, item.step_id, item.plan_id)


@transaction.atomic
def review_resolve_escalation(
    *,
    item_id: int,
    user: User,
    action: str,
    reason: str = "",
    checklist: Iterable[Any] = (),
    document: Any = None,
    budgets: dict[str, Any] | None = None,
    binding: Binding | None = None,
) -> Resolution:
    """Record a reviewer's action on an escalation and say what the run does next.

    Only the actions ``reviews.actions.allowed_actions`` offers for the item now are
    taken (else ``ActionNotAllowed`` with that list, nothing written). ``abort``
    needs a reason and stops the run here; ``edit`` and ``write_plan`` validate
    ``document`` and store it as a new plan version by the reviewer (an invalid
    one raises ``PlanInvalid`` and writes nothing); ``raise_budget`` stores the
    new ``budgets`` (audited); retry, skip and rollback are recorded for the
    executor to carry out. A ``binding`` naming another plan version than the one
    escalated raises ``StalePlan``.
    """
    reason = (reason or "").strip()
    item = _escalation_to_resolve(item_id, user, action, reason, checklist)
    check_binding(item, binding)
    before = item_state(item)
    new: Plan | None = None
    if action in (EscalationAction.EDIT, EscalationAction.WRITE_PLAN):
        validated = plan_validate_edit(document)
        new = plan_create(
            run=item.run,
            document=document,
            source=Plan.Source.REVIEWER,
            created_by=user,
            parent=item.run.current_plan,
            validated=validated,
        )
    elif action == EscalationAction.RAISE_BUDGET:
        _raise_budgets(item, user, budgets or {}, reason)
    statuses: dict[str, ReviewStatus] = {
        EscalationAction.ABORT: ReviewStatus.REJECTED,
        EscalationAction.EDIT: ReviewStatus.EDITED,
        EscalationAction.WRITE_PLAN: ReviewStatus.EDITED,
    }
    status = statuses.get(action, ReviewStatus.APPROVED)
    review_transition(
        item=item, to=status, by=user, decision=action, reason=reason, result_plan=new
    )
    append_events(item.run_id, [decided_event(item, user, new)])
    _carry_out(item, user, action, reason, new)
    item_audit(
        item,
        f"escalation.{action}",
        actor=user,
        before=before,
        after={**item_state(item), "new_plan_version": new.version if new else None},
        reason=reason,
    )
    return Resolution(
        item.pk,
        item.run_id,
        action,
        item.step_id,
        new.pk if new is not None else item.run.current_plan_id,
    )


def _escalation_to_resolve(
    item_id: int, user: User, action: str, reason: str, checklist: Iterable[Any]
) -> ReviewItem:
    """The locked escalation item, once every check for ``action`` by ``user`` passed."""
    if action not in EscalationAction.values:
        raise ReviewError(f"Unknown action {action!r}; use one of {', '.join(EscalationAction)}.")
    require_reviewer(user)
    item = locked_item(item_id)
    if item.kind != ReviewKind.ESCALATION:
        raise NotAllowed("Only escalations are resolved with an action.")
    check_assignee(item, user)
    run = lock_rows(Run.objects.filter(pk=item.run_id)).get()
    allowed = allowed_actions(item, run)
    if action not in allowed:
        labels = ", ".join(allowed) or "none"
        state = f"{run.status}" + (", not escalated" if run.status != RunStatus.ESCALATED else "")
        raise ActionNotAllowed(
            f"{action} does not fit escalation {item.pk} now (run {item.run_id} is {state}); "
            f"allowed: {labels}.",
            allowed,
        )
    if action == EscalationAction.ABORT:
        if not reason:
            raise ReviewError("Give a reason for aborting the run.")
    elif action == EscalationAction.MARK_DONE and not reason:
        raise ReviewError("Give a reason: what was done by hand to undo the step.")
    else:
        check_checklist(item, checklist)
    return item


def _raise_budgets(item: ReviewItem, user: User, budgets: dict[str, Any], reason: str) -> None:
    """Store the reviewer's new limits for the run's task; refused limits write nothing."""
    run = item.run
    task = Task.objects.select_for_update().get(pk=run.task_id)
    try:
        task_budgets_raise(
            task=task,
            overrides=budget_overrides(budgets),
            usage=run_usage(run.pk, run.started_at),
            actor=user,
            reason=reason or f"raised to resume run {run.pk} (review {item.pk})",
        )
    except BudgetRaiseError as exc:
        raise DecisionInputInvalid(str(exc), field=exc.field) from exc


def _carry_out(item: ReviewItem, user: User, action: str, reason: str, new: Plan | None) -> None:
    """Stop the run (an abort while it still runs) or resume it as the reviewer decided."""
    if action == EscalationAction.ABORT and item.run.status != RunStatus.ESCALATED:
        run_stop(
            run_id=item.run_id,
            reason=f"aborted by {user.get_username()} after escalation: {reason}",
            role=REVIEWER,
            by=user,
        )
        return
    try:
        run_resume(
            run_id=item.run_id,
            action=action,
            step_id=item.step_id,
            plan_id=new.pk if new is not None else None,
            by=user,
            item_id=item.pk,
            cause=item.cause,
            reason=reason,
        )
    except ResumeRefused as exc:  # the whole decision rolls back with it
        raise ReviewError(str(exc)) from exc


def _planning_cause(failure: str, problems: list[dict[str, Any]]) -> EscalationCause:
    """Why planning gave no plan: no playbook, no API key, a failed call, or output still invalid."""
    if failure == NO_MATCH:
        return EscalationCause.NO_PLAYBOOK_MATCH
    if failure == "config":
        return EscalationCause.PLANNER_NOT_CONFIGURED
    if failure == EscalationCause.PLANNER_FAILED:
        return EscalationCause.PLANNER_FAILED
    if failure:
        return EscalationCause.PLANNER_UNAVAILABLE
    if any(p.get("code") == "unknown_tool" for p in problems):
        return EscalationCause.UNKNOWN_TOOL
    return EscalationCause.INVALID_PLANNER_OUTPUT


def escalation_for_planning(
    *, run_id: int, reason: str, problems: Iterable[Any] = (), failure: str = ""
) -> ReviewItem:
    """Open the escalation for a run whose planner gave no valid plan (call with the run's stop).

    ``failure`` (``PlanOutcome.failure``) names a planner that produced nothing; else the
    problems decide between ``unknown_tool`` and ``invalid_planner_output``. The reviewer
    can write the plan by hand, retry planning (unless it would fail the same way) or abort.
    """
    found = [
        p
        if isinstance(p, dict)
        else {
            "path": getattr(p, "path", ""),
            "code": getattr(p, "code", ""),
            "message": getattr(p, "message", str(p)),
        }
        for p in problems
    ]
    return escalation_open(
        run_id=run_id,
        cause=_planning_cause(failure, found),
        reason=reason,
        context={"failure": reason, "problems": found},
    )
