"""Review-item decisions that touch only the item: open, claim, assign, and the checks before a decision.

What a decision then does to the run (release, replan, stop) is orchestration:
``runs.lifecycle.reviews`` and ``runs.lifecycle.escalations`` call these helpers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
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
from reviews.notifications import notify_opened
from reviews.statemachine import (
    ChecklistIncomplete,
    FourEyesViolation,
    NotAllowed,
    StalePlan,
    UnsavedEdit,
    lock_open_item,
)
from runs.events import ReviewAssigned, ReviewDecided, ReviewOpened
from runs.models import Plan, Run, RunStatus, Step, StepStatus, Task, TranscriptEvent
from runs.permissions import is_reviewer, username
from runs.plan_versions import content_hash, plan_hash
from runs.planning.references import ReferenceResolutionError, resolve_references
from runs.planning.schema import PlanSyntaxError, parse_plan_text
from runs.redaction import Redactor
from runs.statemachine import (
    NewEvent,
    append_events,
    lock_rows,
    run_transition,
)
from runs.telemetry import tracing

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
    state = {
        "status": item.status,
        "decision": item.decision,
        "assignee": username(item.assignee),
        "plan_version": item.plan.version if item.plan is not None else None,
        "plan_hash": plan_hash(item.plan) or None,
    }
    if item.params_hash:
        state["params_hash"] = item.params_hash
    return state


# --------------------------------------------------------------------------- bindings
@dataclass(frozen=True)
class Binding:
    """What a decision says it is about, so it never lands on something the reviewer did not see.

    ``plan_version`` and ``plan_hash`` name the plan version under review and its
    document's hash; ``params_hash`` a gated step's params as they will run;
    ``editor_text`` is the review page's editor as submitted with an approval.
    Empty fields are not checked, except a missing ``plan_version`` when
    ``version_required``: the interfaces decide which are required.
    """

    plan_version: int | None = None
    plan_hash: str = ""
    params_hash: str = ""
    editor_text: str | None = None
    version_required: bool = False


def gate_params(step: Step) -> Any:
    """A gated step's params as the engine will run them: references resolved from finished steps."""
    results = dict(
        Step.objects.filter(
            plan_id=step.plan_id, phase=Step.Phase.MAIN, status=StepStatus.SUCCEEDED
        ).values_list("key", "result")
    )
    try:
        return resolve_references(step.params, results, step=step.key)
    except ReferenceResolutionError:
        return step.params  # the engine fails such a step before it runs; bind the raw params


def check_binding(item: ReviewItem, binding: Binding | None) -> None:
    """Refuse (``StalePlan``, ``UnsavedEdit``) a decision about anything but what the item holds now."""
    if binding is None:
        return
    stored = check_plan_binding(item, binding)
    if binding.editor_text is not None and item.plan is not None:
        _check_unsaved(binding.editor_text, stored, item.plan.version)
    if item.kind == K.STEP_GATE and item.step is not None:
        _check_params(item, binding.params_hash)


def check_plan_binding(item: ReviewItem, binding: Binding | None) -> str:
    """Refuse a decision naming another plan version or document than the item's; the stored hash."""
    current = item.plan
    stored = plan_hash(current)
    if binding is None:
        return stored
    version = current.version if current is not None else None
    if binding.plan_version is None and binding.version_required and version is not None:
        raise StalePlan(
            f"The decision does not say which plan version it is about (review {item.pk} "
            f"is about v{version}): reload the item and decide again."
        )
    if binding.plan_version is not None and binding.plan_version != version:
        raise StalePlan(
            f"Review {item.pk} is about plan v{version}, not v{binding.plan_version}: "
            "reload the item and review the current version."
        )
    if binding.plan_hash and binding.plan_hash != stored:
        raise StalePlan(
            f"The plan you reviewed is not plan v{version} as stored (its hash differs): "
            "reload the item and review it again."
        )
    return stored


def _check_unsaved(text: str, stored: str, version: int | None) -> None:
    try:
        edited = content_hash(parse_plan_text(text))
    except PlanSyntaxError:
        edited = ""
    if edited != stored:
        raise UnsavedEdit(
            f"The editor holds unsaved changes to plan v{version}; approving would drop them. "
            "Save the edited plan first (it then waits for approval), use Save and approve, "
            "or reload the page to discard them."
        )


def _check_params(item: ReviewItem, params_hash: str) -> None:
    now = content_hash(gate_params(item.step))  # type: ignore[arg-type]
    key = item.step.key  # type: ignore[union-attr]
    if item.params_hash and now != item.params_hash:
        raise StalePlan(
            f"Step {key!r} would now run with other params than when its gate opened; "
            "reject this gate (the run can be retried) rather than approve params nobody saw."
        )
    if params_hash and params_hash != now:
        raise StalePlan(
            f"The params you reviewed are not those step {key!r} will run with: reload the item."
        )


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
    if tracing.enabled():  # the wait, as a span of the run's trace, once the decision commits
        _trace_wait(item)
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


def _trace_wait(item: ReviewItem) -> None:
    trace_id = Run.objects.filter(pk=item.run_id).values_list("trace_id", flat=True).first() or ""
    wait = partial(
        tracing.review_waited,
        trace_id=trace_id,
        run_id=item.run_id,
        kind=item.kind,
        opened=item.created_at,
    )
    transaction.on_commit(wait)


# --------------------------------------------------------------------------- opening
def _submitter_name(run: Run) -> str:
    """Who submitted the run's task (the queue's submitter order), "" for nobody."""
    name = Task.objects.filter(pk=run.task_id).values_list("submitted_by__username", flat=True)
    return name.first() or ""


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
    params_hash: str = "",
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
        params_hash=params_hash,
        checklist=list(rules.checklist or []),
        required_approvals=max(1, required_approvals),
        due_at=timezone.now() + timedelta(minutes=rules.sla_minutes),
        submitter_name=_submitter_name(run),
        **policies.plan_risk_fields(plan.pk if plan is not None else None),
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
        after={
            "kind": kind,
            "cause": cause,
            "plan_version": plan.version if plan else None,
            "plan_hash": plan_hash(plan) or None,
            **({"params_hash": params_hash} if params_hash else {}),
        },
        reason=reason,
    )
    # Webhooks and email go out after the commit, from another worker.
    notify_opened(item)
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
