"""Plan, then confirm: a planner's plan waits for its submitter before it runs.

1. ``plan_store`` asks ``confirmation_reason`` (the one rule) about every valid plan a
   planner made for a task; with a reason, ``confirmation_open`` opens a
   ``confirmation`` review item addressed to the submitter and parks the run
   ``awaiting_approval`` (no worker, no lease), its plan, graph and forecast on its page.
2. The submitter (or any operator) confirms it (``run_confirm``), optionally with an
   edited plan that is stored as a new version first, or discards it (``run_discard``):
   the run then ends ``cancelled``.
3. A confirmed plan meets the approval policy like any plan about to run: a reviewer may
   still have to approve it; otherwise the run goes back to the queue to execute.
   A plan that needs no confirmation meets the policy at once (``planned_plan_hold``).
The kind's SLA and timeout action apply to a confirmation nobody decides.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from reviews.decisions import (
    decided_event,
    item_audit,
    item_state,
    locked_item,
    review_hold_plan,
    review_open,
)
from reviews.models import ReviewItem, ReviewKind, ReviewStatus
from reviews.statemachine import review_transition
from runs.lifecycle.cancel import run_stop
from runs.lifecycle.dispatch import enqueue_run
from runs.lifecycle.errors import RunError
from runs.lifecycle.reviews import plan_validate_edit
from runs.lifecycle.submit import plan_create
from runs.models import ConfirmPlan, Plan, Run, RunStatus, Step, TranscriptEvent
from runs.permissions import is_operator
from runs.plan_versions import content_hash, plan_hash
from runs.redaction import Redactor
from runs.statemachine import append_events, lock_rows, run_transition

SUPERVISOR = TranscriptEvent.Role.SUPERVISOR
REVIEWER = TranscriptEvent.Role.REVIEWER
MAX_REASON_CHARS = 2000


class ConfirmChoiceError(ValueError):
    """An unknown confirmation choice at submission."""


class NotYours(RunError):
    """The user may not confirm or discard this run's plan."""


class StaleConfirmation(RunError):
    """The decision names another plan version than the one waiting."""


def confirm_choice(value: str | None) -> str:
    """A task's choice (auto, always, never), checked; empty takes ``PLANNERWEB_CONFIRM_PLANS``."""
    if value in (None, ""):
        return str(settings.PLANNERWEB_CONFIRM_PLANS)
    if value not in ConfirmPlan.values:
        raise ConfirmChoiceError(
            f"confirm_plan must be one of {', '.join(ConfirmPlan.values)}, not {value!r}"
        )
    return str(value)


def confirmation_reason(*, choice: str, plan: Plan, confidence: float | None) -> str | None:
    """Why the submitter must confirm ``plan`` before it runs, or None to run it at once.

    ``auto``: when the planner's confidence is below ``PLANNERWEB_CONFIRM_BELOW_CONFIDENCE``
    or a main step uses a sensitive tool. An unknown choice (an older task) counts as auto.
    """
    if choice == ConfirmPlan.NEVER:
        return None
    if choice == ConfirmPlan.ALWAYS:
        return "the task asks to confirm every plan before it runs"
    threshold = settings.PLANNERWEB_CONFIRM_BELOW_CONFIDENCE
    if confidence is not None and confidence < threshold:
        return f"the planner's confidence {confidence:.2f} is below {threshold:g}"
    sensitive = (
        Step.objects.filter(plan=plan, phase=Step.Phase.MAIN, tool__sensitive=True)
        .order_by("position")
        .values_list("key", "tool_name")
        .first()
    )
    if sensitive is not None:
        return f"step {sensitive[0]!r} uses the sensitive tool {sensitive[1]!r}"
    return None


def confirmation_open(*, run: Run, plan: Plan, reason: str) -> str:
    """Park a planning run on its submitter's confirmation (inside the caller's transaction)."""
    review_open(
        run=run,
        kind=ReviewKind.CONFIRMATION,
        reason=f"confirm plan v{plan.version} before it runs: {reason}",
        cause="plan_confirmation",
        plan=plan,
        context={"why": reason},
        hold_run=True,
    )
    return RunStatus.AWAITING_APPROVAL


def planned_plan_hold(*, run: Run, plan: Plan, confidence: float | None) -> str | None:
    """Where a planner's valid new plan waits before it runs, if anywhere (in the caller's transaction).

    For its submitter's confirmation, then the approval policy; or for the policy's
    reviewer at once, as a hand-written plan would. Returns the run's new status
    (``awaiting_approval``), or None when the plan may execute now.
    """
    why = confirmation_reason(choice=run.task.confirm_plan, plan=plan, confidence=confidence)
    if why is not None:
        return confirmation_open(run=run, plan=plan, reason=why)
    if review_hold_plan(run=run, plan=plan) is not None:
        return RunStatus.AWAITING_APPROVAL
    return None


def open_confirmation(run_id: int) -> ReviewItem | None:
    """The run's confirmation still waiting for its submitter."""
    return (
        ReviewItem.objects.filter(
            run_id=run_id, kind=ReviewKind.CONFIRMATION, status=ReviewStatus.OPEN
        )
        .select_related("plan")
        .order_by("-id")
        .first()
    )


def may_confirm(user: Any, run: Run) -> bool:
    """The task's submitter, or any operator (an admin is one)."""
    return bool(user.is_authenticated) and (
        run.task.submitted_by_id == user.pk or is_operator(user)
    )


def _waiting(run_id: int, user: User, plan_version: int | None) -> tuple[Run, ReviewItem]:
    """The locked run and its open confirmation; refusals raise before anything is written."""
    run = lock_rows(Run.objects.filter(pk=run_id)).select_related("task").get()
    if not may_confirm(user, run):
        raise NotYours("Only the task's submitter or an operator confirms or discards its plan.")
    found = open_confirmation(run_id)
    if run.status != RunStatus.AWAITING_APPROVAL or found is None:
        raise RunError(f"Run {run_id} is {run.status}: no plan is waiting for confirmation.")
    item = locked_item(found.pk)
    version = item.plan.version if item.plan is not None else None
    if plan_version is not None and plan_version != version:
        raise StaleConfirmation(
            f"Run {run_id} waits for confirmation of plan v{version}, not v{plan_version}: "
            "reload the run and look at the plan again."
        )
    return run, item


@transaction.atomic
def run_confirm(
    *,
    run_id: int,
    user: User,
    plan_version: int | None = None,
    document: Any = None,
    reason: str = "",
) -> Run:
    """Confirm the waiting plan (or ``document``, an edit of it, stored as a new version first).

    Raises ``Run.DoesNotExist``, ``NotYours``, ``RunError`` (nothing waits),
    ``StaleConfirmation`` (another version) or ``reviews.statemachine.PlanInvalid``
    (an edit with problems); nothing is written then. The confirmed plan then meets
    the approval policy; without a hold the run is queued to execute.
    """
    run, item = _waiting(run_id, user, plan_version)
    reason = Redactor(run_id).text(reason.strip()[:MAX_REASON_CHARS])
    before = item_state(item)
    plan: Plan = item.plan  # type: ignore[assignment]
    edited = document is not None and content_hash(document) != plan_hash(plan)
    if edited:
        validated = plan_validate_edit(document)
        plan = plan_create(
            run=run,
            document=document,
            source=Plan.Source.OPERATOR,
            created_by=user,
            parent=item.plan,
            validated=validated,
        )
        item.result_plan = plan
        item.save(update_fields=["result_plan"])
    review_transition(
        item=item,
        to=ReviewStatus.EDITED if edited else ReviewStatus.APPROVED,
        by=user,
        decision="edit" if edited else "confirm",
        reason=reason,
    )
    append_events(run_id, [decided_event(item, user, plan)])
    item_audit(
        item,
        "review.confirmed",
        actor=user,
        before=before,
        after={**item_state(item), "confirmed_version": plan.version},
        reason=reason,
    )
    if review_hold_plan(run=run, plan=plan) is None:
        run_transition(
            run_id=run_id,
            to=RunStatus.QUEUED,
            reason=f"plan v{plan.version} confirmed by {user.get_username()}",
            role=REVIEWER,
            current_plan=plan,
        )
        enqueue_run(run_id)
    run.refresh_from_db()
    return run


@transaction.atomic
def run_discard(
    *, run_id: int, user: User, plan_version: int | None = None, reason: str = ""
) -> Run:
    """Discard the waiting plan: the item is rejected and the run ends ``cancelled``.

    Raises as ``run_confirm`` does; nothing is written then.
    """
    _, item = _waiting(run_id, user, plan_version)
    reason = Redactor(run_id).text(reason.strip()[:MAX_REASON_CHARS]) or "discarded"
    before = item_state(item)
    version = item.plan.version if item.plan is not None else None
    review_transition(
        item=item, to=ReviewStatus.REJECTED, by=user, decision="discard", reason=reason
    )
    append_events(run_id, [decided_event(item, user, item.plan)])
    item_audit(
        item, "review.discarded", actor=user, before=before, after=item_state(item), reason=reason
    )
    return run_stop(
        run_id=run_id,
        reason=f"plan v{version} discarded by {user.get_username()}: {reason}",
        role=REVIEWER,
        by=user,
        why=reason,
    )
