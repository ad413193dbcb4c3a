"""Writes of the review queue: open, claim, assign, approve, reject, edit, expire.

Every function is keyword-only and atomic: the item's change, the run's change,
the transcript events (role ``reviewer`` or ``supervisor``) and the audit entry
commit together or not at all. Escalation decisions live in ``reviews.escalations``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from reviews import policies
from reviews.audit import audit_record
from reviews.models import (
    Approval,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    TimeoutAction,
)
from reviews.statemachine import (
    AlreadyDecided,
    ChecklistIncomplete,
    FourEyesViolation,
    NotAllowed,
    PlanInvalid,
    ReviewError,
    lock_open_item,
    review_transition,
)
from runs.events import ReviewApprovalAdded, ReviewAssigned, ReviewDecided, ReviewOpened
from runs.models import Plan, Run, RunStatus, TranscriptEvent
from runs.permissions import is_reviewer
from runs.planning.validation import validate_with_registry
from runs.statemachine import (
    RUN_ACTIVE,
    RUN_TERMINAL,
    NewEvent,
    append_events,
    lock_rows,
    run_transition,
    steps_cancel,
)

REVIEWER = TranscriptEvent.Role.REVIEWER
SUPERVISOR = TranscriptEvent.Role.SUPERVISOR
K = ReviewKind

__all__ = [
    "AlreadyDecided",
    "ChecklistIncomplete",
    "FourEyesViolation",
    "NotAllowed",
    "PlanInvalid",
    "ReviewError",
    "review_approve",
    "review_assign",
    "review_claim",
    "review_edit",
    "review_expire_overdue",
    "review_hold_plan",
    "review_open",
    "review_open_for_plan",
    "review_reject",
]


def _name(user: AbstractBaseUser | None) -> str | None:
    return user.get_username() if user is not None else None


def _require_reviewer(user: Any) -> None:
    if not is_reviewer(user):
        raise NotAllowed("Only reviewers decide review items.")


def _check_assignee(item: ReviewItem, user: Any) -> None:
    """A claimed item is decided by its assignee; quorum items take approvals from anyone."""
    if item.assignee_id and item.assignee_id != user.pk and item.required_approvals <= 1:
        raise NotAllowed(
            f"Review {item.pk} is claimed by {item.assignee.get_username()}; "  # type: ignore[union-attr]
            "ask them or reassign it."
        )


def _check_checklist(item: ReviewItem, ticked: Iterable[Any]) -> None:
    missing = policies.missing_checklist(list(item.checklist or []), ticked)
    if missing:
        raise ChecklistIncomplete(missing)


def _check_four_eyes(item: ReviewItem, user: Any) -> None:
    if item.kind == K.PLAN_APPROVAL and policies.four_eyes_applies(item.run.task, user):
        raise FourEyesViolation(
            "Four-eyes rule: you submitted this task, so another reviewer must approve its plan."
        )


def _item_state(item: ReviewItem) -> dict[str, Any]:
    return {
        "status": item.status,
        "decision": item.decision,
        "assignee": item.assignee.get_username() if item.assignee_id else None,  # type: ignore[union-attr]
        "plan_version": item.plan.version if item.plan_id else None,  # type: ignore[union-attr]
    }


def _locked(item_id: int) -> ReviewItem:
    item = lock_open_item(item_id)
    # Related rows for checks and messages, read after the lock so they are current.
    return ReviewItem.objects.select_related(
        "run", "run__task", "plan", "step", "assignee", "decided_by"
    ).get(pk=item.pk)


def _decided_event(item: ReviewItem, by: AbstractBaseUser | None, plan: Plan | None) -> NewEvent:
    return NewEvent(
        REVIEWER if by is not None else SUPERVISOR,
        ReviewDecided(
            item_id=item.pk,
            review_kind=item.kind,
            status=item.status,
            decision=item.decision,
            by=_name(by),
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
    item = ReviewItem.objects.create(
        kind=kind,
        cause=cause,
        reason_opened=reason,
        run=run,
        plan=plan,
        step_id=step_id,
        context=context or {},
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
            step=item.step.key if item.step_id else None,  # type: ignore[union-attr]
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
    audit_record(
        actor=None,
        action="review.opened",
        object_type="review_item",
        object_id=item.pk,
        after={"kind": kind, "cause": cause, "plan_version": plan.version if plan else None},
        reason=reason,
        run_id=run.pk,
        item_id=item.pk,
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
def review_claim(*, item_id: int, user: AbstractBaseUser) -> ReviewItem:
    """Take an open item: it shows as yours and only you decide it (unless it needs a quorum)."""
    _require_reviewer(user)
    item = _locked(item_id)
    if item.assignee_id == user.pk:
        return item
    if item.assignee_id is not None:
        raise NotAllowed(f"Review {item.pk} is already claimed by {item.assignee.get_username()}.")  # type: ignore[union-attr]
    return _set_assignee(item, assignee=user, by=user, action="review.claimed")


@transaction.atomic
def review_assign(
    *, item_id: int, user: AbstractBaseUser, assignee: AbstractBaseUser | None
) -> ReviewItem:
    """Give an open item to a reviewer (or to nobody, with ``assignee=None``)."""
    _require_reviewer(user)
    if assignee is not None and not is_reviewer(assignee):
        raise NotAllowed(f"{assignee.get_username()} is not a reviewer.")
    item = _locked(item_id)
    return _set_assignee(item, assignee=assignee, by=user, action="review.assigned")


def _set_assignee(
    item: ReviewItem, *, assignee: AbstractBaseUser | None, by: AbstractBaseUser, action: str
) -> ReviewItem:
    before = _item_state(item)
    item.assignee = assignee  # type: ignore[assignment]
    item.claimed_at = timezone.now() if assignee is not None else None
    item.save(update_fields=["assignee", "claimed_at"])
    append_events(
        item.run_id,
        [
            NewEvent(
                REVIEWER, ReviewAssigned(item_id=item.pk, assignee=_name(assignee), by=_name(by))
            )
        ],
    )
    audit_record(
        actor=by,
        action=action,
        object_type="review_item",
        object_id=item.pk,
        before=before,
        after=_item_state(item),
        run_id=item.run_id,
        item_id=item.pk,
    )
    return item


# --------------------------------------------------------------------------- decisions
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
    append_events(item.run_id, [_decided_event(item, None, item.plan)])
    audit_record(
        actor=None,
        action="review.expired",
        object_type="review_item",
        object_id=item.pk,
        after=_item_state(item),
        reason=item.reason,
        run_id=item.run_id,
        item_id=item.pk,
    )
    return True


def _release_run(item: ReviewItem, plan: Plan, by: AbstractBaseUser) -> None:
    """The reviewer's yes: the run goes back to the queue with exactly ``plan`` as its plan."""
    from runs.dispatch import enqueue_run

    run_transition(
        run_id=item.run_id,
        to=RunStatus.QUEUED,
        reason=f"plan v{plan.version} approved by {by.get_username()}",
        role=REVIEWER,
        extra_events=[_decided_event(item, by, plan)],
        current_plan=plan,
    )
    enqueue_run(item.run_id)


def _gate_decided(item: ReviewItem) -> None:
    """A gate decision resumes a run parked on it (a running executor reads it itself)."""
    from runs.execution.resume import gate_decided

    gate_decided(run_id=item.run_id, item_id=item.pk, decision=item.decision)


def run_stop(*, run_id: int, reason: str, role: str, by: AbstractBaseUser | None = None) -> None:
    """End a run a decision stopped: at once when nothing executes it, else via a cancel request."""
    from runs.services import run_cancel

    status = lock_rows(Run.objects.filter(pk=run_id)).values_list("status", flat=True).get()
    if status in RUN_TERMINAL:
        return
    if status in RUN_ACTIVE:
        run_cancel(run_id=run_id, user=by)
        return
    events = steps_cancel(run_id=run_id, reason=reason, role=role)
    run_transition(
        run_id=run_id,
        to=RunStatus.CANCELLED,
        reason=reason,
        role=role,
        extra_events=events,
        cancel_requested_at=timezone.now(),
        cancel_requested_by=by,
    )


@transaction.atomic
def review_approve(
    *, item_id: int, user: AbstractBaseUser, checklist: Iterable[Any] = (), reason: str = ""
) -> ReviewItem:
    """Approve a plan or a gated step; with a quorum, the item waits for enough distinct approvals.

    Returns the item: still ``open`` while the quorum is not met, ``approved`` once it
    is (a plan's run is then queued with exactly that plan version), or ``expired``
    when the run had already ended.
    """
    _require_reviewer(user)
    item = _locked(item_id)
    if item.kind == K.ESCALATION:
        raise NotAllowed("An escalation is resolved with an action (retry, skip, edit, ...).")
    if _run_ended(item):
        return item
    _check_assignee(item, user)
    _check_checklist(item, checklist)
    _check_four_eyes(item, user)
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
        audit_record(
            actor=user,
            action="review.approval",
            object_type="review_item",
            object_id=item.pk,
            after={"approvals": count, "required": item.required_approvals},
            reason=reason,
            run_id=item.run_id,
            item_id=item.pk,
        )
        return item
    before = _item_state(item)
    review_transition(
        item=item, to=ReviewStatus.APPROVED, by=user, decision="approve", reason=reason
    )
    if item.kind == K.PLAN_APPROVAL:
        _release_run(item, item.plan, user)  # type: ignore[arg-type]
    else:
        append_events(item.run_id, [_decided_event(item, user, item.plan)])
        _gate_decided(item)
    audit_record(
        actor=user,
        action="review.approved",
        object_type="review_item",
        object_id=item.pk,
        before=before,
        after={**_item_state(item), "approvals": count},
        reason=reason,
        run_id=item.run_id,
        item_id=item.pk,
    )
    return item


@transaction.atomic
def review_reject(*, item_id: int, user: AbstractBaseUser, reason: str) -> ReviewItem:
    """Reject a plan (its run ends ``cancelled`` with the reason) or a gated step (it is skipped)."""
    _require_reviewer(user)
    reason = (reason or "").strip()
    if not reason:
        raise ReviewError("Give a reason for the rejection.")
    item = _locked(item_id)
    if item.kind == K.ESCALATION:
        raise NotAllowed("An escalation is resolved with an action (abort, roll back, ...).")
    if _run_ended(item):
        return item
    _check_assignee(item, user)
    before = _item_state(item)
    review_transition(
        item=item, to=ReviewStatus.REJECTED, by=user, decision="reject", reason=reason
    )
    append_events(item.run_id, [_decided_event(item, user, item.plan)])
    if item.kind == K.STEP_GATE:
        _gate_decided(item)
    if item.kind == K.PLAN_APPROVAL:
        run_stop(
            run_id=item.run_id,
            reason=f"plan v{item.plan.version} rejected by {user.get_username()}: {reason}",  # type: ignore[union-attr]
            role=REVIEWER,
            by=user,
        )
    audit_record(
        actor=user,
        action="review.rejected",
        object_type="review_item",
        object_id=item.pk,
        before=before,
        after=_item_state(item),
        reason=reason,
        run_id=item.run_id,
        item_id=item.pk,
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
    user: AbstractBaseUser,
    document: Any,
    checklist: Iterable[Any] = (),
    reason: str = "",
) -> ReviewItem:
    """Replace the plan with the reviewer's edit: a new version by them, which is what runs.

    An invalid edit raises ``PlanInvalid`` and writes nothing. When the new version
    needs a quorum, a fresh item opens for it with this reviewer's approval counted.
    """
    from runs.services import plan_create

    _require_reviewer(user)
    item = _locked(item_id)
    if item.kind != K.PLAN_APPROVAL:
        raise NotAllowed("Only a plan approval is edited here; escalations use their own actions.")
    if _run_ended(item):
        return item
    _check_assignee(item, user)
    _check_checklist(item, checklist)
    _check_four_eyes(item, user)
    validated = plan_validate_edit(document)
    new = plan_create(
        run=item.run,
        document=document,
        source=Plan.Source.REVIEWER,
        created_by=user,
        parent=item.plan,
        validated=validated,
    )
    before = _item_state(item)
    review_transition(
        item=item, to=ReviewStatus.EDITED, by=user, decision="edit", reason=reason, result_plan=new
    )
    quorum = policies.required_approvals(new)
    if quorum > 1:
        append_events(item.run_id, [_decided_event(item, user, new)])
        follow_up = review_open_for_plan(
            run=item.run,
            plan=new,
            reason=f"plan v{new.version} edited by {user.get_username()} needs {quorum} approvals",
            required_approvals=quorum,
        )
        Approval.objects.create(item=follow_up, user=user)
    else:
        _release_run(item, new, user)
    audit_record(
        actor=user,
        action="review.edited",
        object_type="review_item",
        object_id=item.pk,
        before=before,
        after={**_item_state(item), "new_plan_version": new.version, "document": document},
        reason=reason,
        run_id=item.run_id,
        item_id=item.pk,
    )
    return item


# --------------------------------------------------------------------------- timeouts
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
    item = _locked(item_id)
    word = "rejected" if action == TimeoutAction.AUTO_REJECT else "aborted"
    reason = f"no decision within {sla_minutes} min: {word} automatically"
    before = _item_state(item)
    review_transition(item=item, to=ReviewStatus.EXPIRED, by=None, decision=action, reason=reason)
    append_events(item.run_id, [_decided_event(item, None, item.plan)])
    # A gated step that times out with auto-reject is skipped (the engine reads the decision);
    # everything else stops the run.
    if not (item.kind == K.STEP_GATE and action == TimeoutAction.AUTO_REJECT):
        run_stop(run_id=item.run_id, reason=f"review {item.pk} {reason}", role=SUPERVISOR)
    else:
        _gate_decided(item)
    audit_record(
        actor=None,
        action="review.expired",
        object_type="review_item",
        object_id=item.pk,
        before=before,
        after=_item_state(item),
        reason=reason,
        run_id=item.run_id,
        item_id=item.pk,
    )


# --------------------------------------------------------------------------- config audit
def config_audit(
    *,
    actor: AbstractBaseUser | None,
    object_type: str,
    object_id: Any,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str = "",
) -> None:
    """Audit a change to tools, policies, kind settings or budgets (no entry when nothing changed)."""
    if before == after:
        return
    action = "created" if before is None else "deleted" if after is None else "changed"
    audit_record(
        actor=actor,
        action=f"{object_type}.{action}",
        object_type=object_type,
        object_id=object_id,
        before=before,
        after=after,
        reason=reason,
    )
