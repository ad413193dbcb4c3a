"""Review-item decisions that touch only the item: open, claim, assign, and the checks before a decision.

What a decision then does to the run (release, replan, stop) is orchestration:
``runs.lifecycle.reviews`` and ``runs.lifecycle.escalations`` call these helpers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from reviews import policies
from reviews.audit import audit_record
from reviews.models import (
    ReviewItem,
    ReviewKind,
)
from reviews.statemachine import (
    ChecklistIncomplete,
    FourEyesViolation,
    NotAllowed,
    lock_open_item,
)
from runs.events import ReviewAssigned, ReviewDecided, ReviewOpened
from runs.models import Plan, Run, RunStatus, TranscriptEvent
from runs.permissions import is_reviewer, username
from runs.redaction import Redactor
from runs.statemachine import (
    NewEvent,
    append_events,
    lock_rows,
    run_transition,
)

REVIEWER = TranscriptEvent.Role.REVIEWER
SUPERVISOR = TranscriptEvent.Role.SUPERVISOR
K = ReviewKind


def require_reviewer(user: Any) -> None:
    if not is_reviewer(user):
        raise NotAllowed("Only reviewers decide review items.")


def check_assignee(item: ReviewItem, user: Any) -> None:
    """A claimed item is decided by its assignee; quorum items take approvals from anyone."""
    if item.assignee_id and item.assignee_id != user.pk and item.required_approvals <= 1:
        raise NotAllowed(
            f"Review {item.pk} is claimed by {username(item.assignee)}; ask them or reassign it."
        )


def check_checklist(item: ReviewItem, ticked: Iterable[Any]) -> None:
    missing = policies.missing_checklist(list(item.checklist or []), ticked)
    if missing:
        raise ChecklistIncomplete(missing)


def check_four_eyes(item: ReviewItem, user: Any) -> None:
    if item.kind == K.PLAN_APPROVAL and policies.four_eyes_applies(item.run.task, user):
        raise FourEyesViolation(
            "Four-eyes rule: you submitted this task, so another reviewer must approve its plan."
        )


def item_state(item: ReviewItem) -> dict[str, Any]:
    return {
        "status": item.status,
        "decision": item.decision,
        "assignee": username(item.assignee),
        "plan_version": item.plan.version if item.plan is not None else None,
    }


def item_audit(
    item: ReviewItem,
    action: str,
    *,
    actor: User | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
) -> None:
    """Record a change to ``item`` in the audit chain, filed under its run."""
    audit_record(
        actor=actor,
        action=action,
        object_type="review_item",
        object_id=item.pk,
        before=before,
        after=after,
        reason=reason,
        run_id=item.run_id,
        item_id=item.pk,
    )


def locked_item(item_id: int) -> ReviewItem:
    item = lock_open_item(item_id)
    # Related rows for checks and messages, read after the lock so they are current.
    return ReviewItem.objects.select_related(
        "run", "run__task", "plan", "step", "assignee", "decided_by"
    ).get(pk=item.pk)


def decided_event(item: ReviewItem, by: User | None, plan: Plan | None) -> NewEvent:
    return NewEvent(
        REVIEWER if by is not None else SUPERVISOR,
        ReviewDecided(
            item_id=item.pk,
            review_kind=item.kind,
            status=item.status,
            decision=item.decision,
            by=username(by),
            reason=item.reason,
            plan_version=plan.version if plan is not None else None,
        ),
    )


# --------------------------------------------------------------------------- opening
@transaction.atomic
def review_open(
    *,
    run: Run,
    kind: str,
    reason: str,
    cause: str = "",
    plan: Plan | None = None,
    step_id: int | None = None,
    context: dict[str, Any] | None = None,
    required_approvals: int = 1,
    hold_run: bool = False,
) -> ReviewItem:
    """Open an item with its kind's SLA and checklist; ``hold_run`` parks the run awaiting approval."""
    rules = policies.kind_settings(kind)
    red = Redactor(run.pk)  # the item shows what the run stored: redacted alike
    reason = red.text(reason)
    item = ReviewItem.objects.create(
        kind=kind,
        cause=cause,
        reason_opened=reason,
        run=run,
        plan=plan,
        step_id=step_id,
        context=red.value(context or {}),
        checklist=list(rules.checklist or []),
        required_approvals=max(1, required_approvals),
        due_at=timezone.now() + timedelta(minutes=rules.sla_minutes),
    )
    opened = NewEvent(
        SUPERVISOR,
        ReviewOpened(
            item_id=item.pk,
            review_kind=kind,
            reason=reason,
            plan_version=plan.version if plan is not None else None,
            step=item.step.key if item.step is not None else None,
            required_approvals=item.required_approvals,
        ),
    )
    status = lock_rows(Run.objects.filter(pk=run.pk)).values_list("status", flat=True).get()
    if hold_run and status != RunStatus.AWAITING_APPROVAL:
        # The run holds no worker while a human decides: the lease goes with the status.
        run_transition(
            run_id=run.pk,
            to=RunStatus.AWAITING_APPROVAL,
            reason=reason,
            role=SUPERVISOR,
            extra_events=[opened],
            lease_owner="",
            lease_expires_at=None,
        )
    else:
        append_events(run.pk, [opened])
    item_audit(
        item,
        "review.opened",
        actor=None,
        after={"kind": kind, "cause": cause, "plan_version": plan.version if plan else None},
        reason=reason,
    )
    return item


def review_open_for_plan(
    *, run: Run, plan: Plan, reason: str, required_approvals: int | None = None
) -> ReviewItem:
    """Park the run and ask a reviewer to approve ``plan`` (the exact version that will run)."""
    return review_open(
        run=run,
        kind=K.PLAN_APPROVAL,
        reason=reason,
        cause="policy",
        plan=plan,
        required_approvals=required_approvals or policies.required_approvals(plan),
        hold_run=True,
    )


@transaction.atomic
def review_hold_plan(*, run: Run, plan: Plan) -> ReviewItem | None:
    """Consult the approval policy for a valid plan: open an item and park the run, or None to go on."""
    reason = policies.plan_needs_approval(plan, run.task)
    if reason is None:
        return None
    return review_open_for_plan(run=run, plan=plan, reason=reason)


# --------------------------------------------------------------------------- claim / assign
@transaction.atomic
def review_claim(*, item_id: int, user: User) -> ReviewItem:
    """Take an open item: it shows as yours and only you decide it (unless it needs a quorum)."""
    require_reviewer(user)
    item = locked_item(item_id)
    if item.assignee_id == user.pk:
        return item
    if item.assignee is not None:
        raise NotAllowed(f"Review {item.pk} is already claimed by {item.assignee.get_username()}.")
    return _set_assignee(item, assignee=user, by=user, action="review.claimed")


@transaction.atomic
def review_assign(*, item_id: int, user: User, assignee: User | None) -> ReviewItem:
    """Give an open item to a reviewer (or to nobody, with ``assignee=None``)."""
    require_reviewer(user)
    if assignee is not None and not is_reviewer(assignee):
        raise NotAllowed(f"{assignee.get_username()} is not a reviewer.")
    item = locked_item(item_id)
    return _set_assignee(item, assignee=assignee, by=user, action="review.assigned")


def _set_assignee(item: ReviewItem, *, assignee: User | None, by: User, action: str) -> ReviewItem:
    before = item_state(item)
    item.assignee = assignee
    item.claimed_at = timezone.now() if assignee is not None else None
    item.save(update_fields=["assignee", "claimed_at"])
    append_events(
        item.run_id,
        [
            NewEvent(
                REVIEWER,
                ReviewAssigned(item_id=item.pk, assignee=username(assignee), by=username(by)),
            )
        ],
    )
    item_audit(item, action, actor=by, before=before, after=item_state(item))
    return item


# --------------------------------------------------------------------------- timeouts


# --------------------------------------------------------------------------- config audit
