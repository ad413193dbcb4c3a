"""Reviewer decisions and what they do to the run: approve, reject, edit, and items that expire.

A decision binds to what the reviewer saw (``reviews.decisions.Binding``): an edit is
saved as a new plan version the item then waits to approve, never run unapproved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from reviews import policies
from reviews.decisions import (
    REVIEWER,
    SUPERVISOR,
    Binding,
    K,
    check_assignee,
    check_binding,
    check_checklist,
    check_four_eyes,
    check_plan_binding,
    decided_event,
    item_audit,
    item_state,
    locked_item,
    require_reviewer,
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
from runs.events import ReviewApprovalAdded, ReviewPlanSaved
from runs.lifecycle.cancel import run_stop
from runs.lifecycle.dispatch import enqueue_run
from runs.lifecycle.elicitation import elicitation_expired_event
from runs.lifecycle.resume import gate_decided
from runs.lifecycle.submit import plan_create
from runs.models import Plan, Run, RunStatus
from runs.plan_versions import content_hash, plan_document_diff, plan_hash
from runs.planning.validation import PlanProblem, plan_size_problem, validate_with_registry
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
    *,
    item_id: int,
    user: User,
    binding: Binding | None = None,
    checklist: Iterable[Any] = (),
    reason: str = "",
) -> ReviewItem:
    """Approve a plan or a gated step; with a quorum, the item waits for enough distinct approvals.

    ``binding`` names what the reviewer saw (plan version and hash, a gate's params, the
    page's editor text): anything else than the item's current version raises
    ``StalePlan``, unsaved editor changes ``UnsavedEdit``; nothing is written then.
    Returns the item: still ``open`` while the quorum is not met, ``approved`` once it
    is (a plan's run is then queued with exactly that plan version), or ``expired``
    when the run had already ended.
    """
    require_reviewer(user)
    item = locked_item(item_id)
    if item.kind == K.ESCALATION:
        raise NotAllowed("An escalation is resolved with an action (retry, skip, edit, ...).")
    if item.kind == K.CLARIFICATION:
        raise NotAllowed("A clarifying question is answered on its run's page, not approved.")
    if item.kind == K.CONFIRMATION:
        raise NotAllowed("A plan confirmation is decided by its submitter on the run's page.")
    if _run_ended(item):
        return item
    check_assignee(item, user)
    check_binding(item, binding)
    check_checklist(item, checklist)
    check_four_eyes(item, user)
    return _approve(item, user, reason, edited=False)


def _approve(item: ReviewItem, user: User, reason: str, *, edited: bool) -> ReviewItem:
    """Count ``user``'s approval of the item's current version; decide it once the quorum is met."""
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
            after={**item_state(item), "approvals": count, "required": item.required_approvals},
            reason=reason,
        )
        return item
    before = item_state(item)
    to, decision = (ReviewStatus.EDITED, "edit") if edited else (ReviewStatus.APPROVED, "approve")
    review_transition(item=item, to=to, by=user, decision=decision, reason=reason)
    if item.kind == K.PLAN_APPROVAL:
        _release_run(item, item.plan, user)  # type: ignore[arg-type]
    else:
        append_events(item.run_id, [decided_event(item, user, item.plan)])
        _gate_decided(item)
    item_audit(
        item,
        "review.edited" if edited else "review.approved",
        actor=user,
        before=before,
        after={**item_state(item), "approvals": count},
        reason=reason,
    )
    return item


@transaction.atomic
def review_reject(
    *, item_id: int, user: User, reason: str, binding: Binding | None = None
) -> ReviewItem:
    """Reject a plan (its run ends ``cancelled`` with the reason) or a gated step (it is skipped).

    A ``binding`` naming another plan version than the item's raises ``StalePlan``; a
    gate whose params changed since it opened may still be rejected.
    """
    require_reviewer(user)
    reason = (reason or "").strip()
    if not reason:
        raise ReviewError("Give a reason for the rejection.")
    item = locked_item(item_id)
    if item.kind == K.ESCALATION:
        raise NotAllowed("An escalation is resolved with an action (abort, roll back, ...).")
    if item.kind in (K.CLARIFICATION, K.CONFIRMATION):
        raise NotAllowed("This item is decided by the task's submitter on the run's page.")
    if _run_ended(item):
        return item
    check_assignee(item, user)
    check_plan_binding(item, binding)
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
    too_large = plan_size_problem(document)
    if too_large is not None:  # refused before checking thousands of steps one by one
        raise PlanInvalid([_problem(too_large)])
    validated = validate_with_registry(document)
    if not validated.is_valid:
        raise PlanInvalid([_problem(p) for p in validated.problems])
    return validated


@dataclass(frozen=True)
class EditPreview:
    """What saving an edit would store, worked out without writing anything."""

    # ``plan_document_diff`` against the version under review; None for a plan too large to save
    diff: dict[str, Any] | None
    problems: list[dict[str, str]]  # validation problems: saving would be refused with these


def review_edit_preview(*, item: ReviewItem, document: Any) -> EditPreview:
    """The diff of ``document`` against the item's plan version and its problems; writes nothing.

    Validated as a save would be (today's registry, tool defaults filled in), so the
    diff shows exactly what the new version would hold. A plan over the step limit gets
    that refusal alone, before any step is checked or diffed.
    """
    too_large = plan_size_problem(document)
    if too_large is not None:
        return EditPreview(diff=None, problems=[_problem(too_large)])
    validated = validate_with_registry(document)
    submitted = validated.submitted if validated.submitted is not None else document
    base = item.plan.document if item.plan is not None else None
    return EditPreview(
        diff=plan_document_diff(base, submitted),
        problems=[_problem(p) for p in validated.problems],
    )


def _problem(problem: PlanProblem) -> dict[str, str]:
    return {"path": problem.path, "code": problem.code, "message": problem.message}


@transaction.atomic
def review_edit(
    *,
    item_id: int,
    user: User,
    document: Any,
    binding: Binding | None = None,
    approve: bool = False,
    checklist: Iterable[Any] = (),
    reason: str = "",
) -> ReviewItem:
    """Store the reviewer's edit as a new plan version, which the item then waits to approve.

    The edit is based on the version ``binding`` names (another one raises
    ``StalePlan``); an invalid edit raises ``PlanInvalid``; either writes nothing.
    Approvals of the earlier version no longer count. ``approve`` also approves the
    new version in the same transaction (the checklist and four-eyes rule apply):
    the item ends ``edited`` and the run goes on with it once the quorum is met.
    """
    require_reviewer(user)
    item = locked_item(item_id)
    if item.kind != K.PLAN_APPROVAL:
        raise NotAllowed("Only a plan approval is edited here; escalations use their own actions.")
    if _run_ended(item):
        return item
    check_assignee(item, user)
    check_binding(item, binding)
    if approve:
        check_checklist(item, checklist)
        check_four_eyes(item, user)
    if content_hash(document) == plan_hash(item.plan):
        if approve:  # nothing to save: this is a plain approval of what is under review
            return _approve(item, user, reason, edited=False)
        raise ReviewError(f"The plan is unchanged from v{item.plan.version}; nothing to save.")  # type: ignore[union-attr]
    validated = plan_validate_edit(document)
    new = plan_create(
        run=item.run,
        document=document,
        source=Plan.Source.REVIEWER,
        created_by=user,
        parent=item.plan,
        validated=validated,
    )
    _under_review(item, new, user, document, reason)
    if approve:
        return _approve(item, user, reason, edited=True)
    return item


def _under_review(item: ReviewItem, new: Plan, user: User, document: Any, reason: str) -> None:
    """Make ``new`` the version the item reviews; approvals of the old one no longer count."""
    before = item_state(item)
    dropped = [a.user.get_username() for a in item.approvals.select_related("user")]
    item.approvals.all().delete()
    item.plan = new
    item.result_plan = new
    # An edit never lowers the bar: a tool it adds may need more approvals, none fewer.
    item.required_approvals = max(item.required_approvals, policies.required_approvals(new))
    risk = policies.plan_risk_fields(new.pk)
    for name, value in risk.items():
        setattr(item, name, value)
    item.save(update_fields=["plan", "result_plan", "required_approvals", *risk])
    saved = ReviewPlanSaved(
        item_id=item.pk,
        by=user.get_username(),
        plan_version=new.version,
        approvals_reset=len(dropped),
    )
    append_events(item.run_id, [NewEvent(REVIEWER, saved)])
    item_audit(
        item,
        "review.plan_saved",
        actor=user,
        before=before,
        after={
            **item_state(item),
            "parent_version": new.parent.version if new.parent else None,
            "approvals_reset": dropped,
            "required": item.required_approvals,
            "document": document,
        },
        reason=reason,
    )


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
    # A gated step that times out with auto-reject is skipped (the engine reads the decision),
    # a tool's question is declined (the waiting call reads it); everything else stops the run.
    if item.kind == K.ELICITATION and action == TimeoutAction.AUTO_REJECT:
        append_events(item.run_id, [elicitation_expired_event(item)])
    elif not (item.kind == K.STEP_GATE and action == TimeoutAction.AUTO_REJECT):
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
