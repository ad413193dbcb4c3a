"""Reviewer decisions and what they do to the run: approve, reject, edit, and items that expire."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from reviews import policies
from reviews.decisions import (
    REVIEWER,
    SUPERVISOR,
    K,
    check_assignee,
    check_checklist,
    check_four_eyes,
    decided_event,
    item_audit,
    item_state,
    locked_item,
    require_reviewer,
    review_open_for_plan,
)
from reviews.models import (
    Approval,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    TimeoutAction,
)
from reviews.statemachine import (
    AlreadyDecided,
    NotAllowed,
    PlanInvalid,
    ReviewError,
    review_transition,
)
from runs.events import ReviewApprovalAdded
from runs.lifecycle.cancel import run_stop
from runs.lifecycle.dispatch import enqueue_run
from runs.lifecycle.resume import gate_decided
from runs.lifecycle.submit import plan_create
from runs.models import Plan, Run, RunStatus
from runs.planning.validation import validate_with_registry
from runs.statemachine import (
    RUN_TERMINAL,
    NewEvent,
    append_events,
    lock_rows,
    run_transition,
)


def _run_ended(item: ReviewItem) -> bool:
    """Close a plan item whose run ended meanwhile (cancelled by its operator); True if so."""
    status = lock_rows(Run.objects.filter(pk=item.run_id)).values_list("status", flat=True).get()
    if item.kind != K.PLAN_APPROVAL or status not in RUN_TERMINAL:
        return False
    review_transition(
        item=item,
        to=ReviewStatus.EXPIRED,
        by=None,
        decision="run_ended",
        reason=f"run {item.run_id} ended ({status}) before a decision",
    )
    append_events(item.run_id, [decided_event(item, None, item.plan)])
    item_audit(item, "review.expired", actor=None, after=item_state(item), reason=item.reason)
    return True


def _release_run(item: ReviewItem, plan: Plan, by: User) -> None:
    """The reviewer's yes: the run goes back to the queue with exactly ``plan`` as its plan."""

    run_transition(
        run_id=item.run_id,
        to=RunStatus.QUEUED,
        reason=f"plan v{plan.version} approved by {by.get_username()}",
        role=REVIEWER,
        extra_events=[decided_event(item, by, plan)],
        current_plan=plan,
    )
    enqueue_run(item.run_id)


def _gate_decided(item: ReviewItem) -> None:
    """A gate decision resumes a run parked on it (a running executor reads it itself)."""

    gate_decided(run_id=item.run_id, item_id=item.pk, decision=item.decision)


@transaction.atomic
def review_approve(
    *, item_id: int, user: User, checklist: Iterable[Any] = (), reason: str = ""
) -> ReviewItem:
    """Approve a plan or a gated step; with a quorum, the item waits for enough distinct approvals.

    Returns the item: still ``open`` while the quorum is not met, ``approved`` once it
    is (a plan's run is then queued with exactly that plan version), or ``expired``
    when the run had already ended.
    """
    require_reviewer(user)
    item = locked_item(item_id)
    if item.kind == K.ESCALATION:
        raise NotAllowed("An escalation is resolved with an action (retry, skip, edit, ...).")
    if _run_ended(item):
        return item
    check_assignee(item, user)
    check_checklist(item, checklist)
    check_four_eyes(item, user)
    try:
        with transaction.atomic():
            Approval.objects.create(item=item, user=user)
    except IntegrityError:
        raise ReviewError("You already approved this item; it needs another reviewer.") from None
    count = item.approvals.count()
    if count < item.required_approvals:
        append_events(
            item.run_id,
            [
                NewEvent(
                    REVIEWER,
                    ReviewApprovalAdded(
                        item_id=item.pk,
                        by=user.get_username(),
                        approvals=count,
                        required=item.required_approvals,
                    ),
                )
            ],
        )
        item_audit(
            item,
            "review.approval",
            actor=user,
            after={"approvals": count, "required": item.required_approvals},
            reason=reason,
        )
        return item
    before = item_state(item)
    review_transition(
        item=item, to=ReviewStatus.APPROVED, by=user, decision="approve", reason=reason
    )
    if item.kind == K.PLAN_APPROVAL:
        _release_run(item, item.plan, user)  # type: ignore[arg-type]
    else:
        append_events(item.run_id, [decided_event(item, user, item.plan)])
        _gate_decided(item)
    item_audit(
        item,
        "review.approved",
        actor=user,
        before=before,
        after={**item_state(item), "approvals": count},
        reason=reason,
    )
    return item


@transaction.atomic
def review_reject(*, item_id: int, user: User, reason: str) -> ReviewItem:
    """Reject a plan (its run ends ``cancelled`` with the reason) or a gated step (it is skipped)."""
    require_reviewer(user)
    reason = (reason or "").strip()
    if not reason:
        raise ReviewError("Give a reason for the rejection.")
    item = locked_item(item_id)
    if item.kind == K.ESCALATION:
        raise NotAllowed("An escalation is resolved with an action (abort, roll back, ...).")
    if _run_ended(item):
        return item
    check_assignee(item, user)
    before = item_state(item)
    review_transition(
        item=item, to=ReviewStatus.REJECTED, by=user, decision="reject", reason=reason
    )
    append_events(item.run_id, [decided_event(item, user, item.plan)])
    if item.kind == K.STEP_GATE:
        _gate_decided(item)
    if item.kind == K.PLAN_APPROVAL:
        run_stop(
            run_id=item.run_id,
            reason=f"plan v{item.plan.version} rejected by {user.get_username()}: {reason}",  # type: ignore[union-attr]
            role=REVIEWER,
            by=user,
        )
    item_audit(
        item,
        "review.rejected",
        actor=user,
        before=before,
        after=item_state(item),
        reason=reason,
    )
    return item


def plan_validate_edit(document: Any) -> Any:
    """Validate an edited plan against today's registry; raise ``PlanInvalid`` with every problem."""
    validated = validate_with_registry(document)
    if not validated.is_valid:
        raise PlanInvalid(
            [{"path": p.path, "code": p.code, "message": p.message} for p in validated.problems]
        )
    return validated


@transaction.atomic
def review_edit(
    *,
    item_id: int,
    user: User,
    document: Any,
    checklist: Iterable[Any] = (),
    reason: str = "",
) -> ReviewItem:
    """Replace the plan with the reviewer's edit: a new version by them, which is what runs.

    An invalid edit raises ``PlanInvalid`` and writes nothing. When the new version
    needs a quorum, a fresh item opens for it with this reviewer's approval counted.
    """

    require_reviewer(user)
    item = locked_item(item_id)
    if item.kind != K.PLAN_APPROVAL:
        raise NotAllowed("Only a plan approval is edited here; escalations use their own actions.")
    if _run_ended(item):
        return item
    check_assignee(item, user)
    check_checklist(item, checklist)
    check_four_eyes(item, user)
    validated = plan_validate_edit(document)
    new = plan_create(
        run=item.run,
        document=document,
        source=Plan.Source.REVIEWER,
        created_by=user,
        parent=item.plan,
        validated=validated,
    )
    before = item_state(item)
    review_transition(
        item=item, to=ReviewStatus.EDITED, by=user, decision="edit", reason=reason, result_plan=new
    )
    quorum = policies.required_approvals(new)
    if quorum > 1:
        append_events(item.run_id, [decided_event(item, user, new)])
        follow_up = review_open_for_plan(
            run=item.run,
            plan=new,
            reason=f"plan v{new.version} edited by {user.get_username()} needs {quorum} approvals",
            required_approvals=quorum,
        )
        Approval.objects.create(item=follow_up, user=user)
    else:
        _release_run(item, new, user)
    item_audit(
        item,
        "review.edited",
        actor=user,
        before=before,
        after={**item_state(item), "new_plan_version": new.version, "document": document},
        reason=reason,
    )
    return item


def review_expire_overdue(*, now: datetime | None = None) -> list[int]:
    """Apply each kind's timeout action to its overdue open items; the ids expired.

    Each item is expired in its own transaction under its row lock, so a reviewer
    deciding at the same moment either wins (the item is skipped here) or loses
    with "already decided by the system".
    """
    now = now or timezone.now()
    actions = {kind: policies.kind_settings(kind) for kind in ReviewKind.values}
    due = ReviewItem.objects.filter(
        status=ReviewStatus.OPEN,
        due_at__lt=now,
        kind__in=[k for k, s in actions.items() if s.timeout_action != TimeoutAction.NONE],
    ).values_list("pk", "kind")
    expired = []
    for item_id, kind in list(due):
        try:
            _expire_one(item_id, actions[kind].timeout_action, actions[kind].sla_minutes)
        except AlreadyDecided:
            continue
        expired.append(item_id)
    return expired


@transaction.atomic
def _expire_one(item_id: int, action: str, sla_minutes: int) -> None:
    item = locked_item(item_id)
    word = "rejected" if action == TimeoutAction.AUTO_REJECT else "aborted"
    reason = f"no decision within {sla_minutes} min: {word} automatically"
    before = item_state(item)
    review_transition(item=item, to=ReviewStatus.EXPIRED, by=None, decision=action, reason=reason)
    append_events(item.run_id, [decided_event(item, None, item.plan)])
    # A gated step that times out with auto-reject is skipped (the engine reads the decision);
    # everything else stops the run.
    if not (item.kind == K.STEP_GATE and action == TimeoutAction.AUTO_REJECT):
        run_stop(run_id=item.run_id, reason=f"review {item.pk} {reason}", role=SUPERVISOR)
    else:
        _gate_decided(item)
    item_audit(
        item,
        "review.expired",
        actor=None,
        before=before,
        after=item_state(item),
        reason=reason,
    )
