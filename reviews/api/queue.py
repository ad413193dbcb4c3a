"""API endpoints for the review queue: list, detail, claim, assign, decide.

Every endpoint is for reviewers (staff included). Domain errors of the services
(``reviews.statemachine``) are mapped once in ``plannerweb/api.py``: already
decided 409, invalid plan or unticked checklist 422, not allowed / four eyes 403.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest
from ninja import Path, Query, Router

from reviews import decisions, selectors
from reviews.api.schemas.queue import (
    AssignIn,
    DecideIn,
    QueueFiltersIn,
    ReviewItemDetailOut,
    ReviewPageOut,
)
from reviews.decisions import Binding
from reviews.models import ReviewItem, ReviewKind
from reviews.selectors import QueueFilters
from runs.api.auth import caller, role_auth
from runs.api.errors import ERRORS, ApiError, edited_plan, field_error
from runs.api.inputs import MAX_ID
from runs.api.paging import OFFSET, limit_param, offset_page
from runs.lifecycle.reviews import review_approve, review_edit, review_reject
from runs.permissions import is_reviewer
from runs.selectors import id_page

router = Router(tags=["reviews"], auth=role_auth(is_reviewer, "review"))

ItemId = Path(..., ge=1, le=MAX_ID, description="The review item's id.")


def _reviewer(request: HttpRequest) -> Any:
    return caller(request)  # the router's auth checked the role


def _item(item_id: int) -> ReviewItem:
    try:
        return selectors.review_item(item_id)
    except ReviewItem.DoesNotExist:
        raise ApiError(404, "not_found", f"There is no review item {item_id}.") from None


def _exists(item_id: int) -> None:
    if not ReviewItem.objects.filter(pk=item_id).exists():
        raise ApiError(404, "not_found", f"There is no review item {item_id}.")


# --------------------------------------------------------------------------- queue
@router.get("", response={200: ReviewPageOut, **ERRORS}, summary="The review queue")
def review_list(
    request: HttpRequest,
    filters: Query[QueueFiltersIn],
    limit: int = limit_param(50),
    offset: int = OFFSET,
) -> dict[str, Any]:
    """The queue page's items, filters and orders (open items, overdue first, by default)."""
    user = _reviewer(request)
    parsed = QueueFilters(
        kind=filters.kind or "",
        status=filters.status,
        age=filters.age or "",
        run=filters.run,
        assignee=filters.assignee or "",
        overdue=filters.overdue,
        risk=filters.risk or "",
        sensitive=filters.sensitive,
        submitter=filters.submitter or "",
        sort=filters.sort,
    )
    items = selectors.review_queue(parsed, user=user).select_related("result_plan")
    return offset_page(items, limit=limit, offset=offset, items=id_page(items, offset, limit))


@router.get("/{item_id}", response={200: ReviewItemDetailOut, **ERRORS}, summary="One item")
def review_detail(request: HttpRequest, item_id: int = ItemId) -> ReviewItem:
    """An item with its checklist, approvals so far, context and the plan under review."""
    _reviewer(request)
    return _item(item_id)


@router.post("/{item_id}/claim", response={200: ReviewItemDetailOut, **ERRORS}, summary="Claim")
def review_claim(request: HttpRequest, item_id: int = ItemId) -> ReviewItem:
    """Make an open item yours; an item claimed by someone else is 403 (ask them, or reassign)."""
    user = _reviewer(request)
    _exists(item_id)
    decisions.review_claim(item_id=item_id, user=user)
    return _item(item_id)


@router.post("/{item_id}/assign", response={200: ReviewItemDetailOut, **ERRORS}, summary="Assign")
def review_assign(request: HttpRequest, payload: AssignIn, item_id: int = ItemId) -> ReviewItem:
    """Give an open item to a reviewer (or to nobody with ``null``)."""
    user = _reviewer(request)
    _exists(item_id)
    assignee = None
    if payload.assignee:
        assignee = get_user_model().objects.filter(username=payload.assignee).first()
        if assignee is None:
            raise ApiError(
                422,
                "invalid_input",
                f"There is no user {payload.assignee[:40]!r}.",
                fields=[{"field": "assignee", "code": "unknown", "message": "No such user."}],
            )
    decisions.review_assign(item_id=item_id, user=user, assignee=assignee)
    return _item(item_id)


@router.post("/{item_id}/decide", response={200: ReviewItemDetailOut, **ERRORS}, summary="Decide")
def review_decide(request: HttpRequest, payload: DecideIn, item_id: int = ItemId) -> ReviewItem:
    """Approve, reject (with a reason) or edit (with a new plan) an item, ticking its checklist.

    Every approval and edit names the plan version it is about (``plan_version``, and
    ``plan_hash`` to bind it to the exact document; a step gate's approval also names
    ``params_hash``): anything but the item's current version is 409 ``stale_plan``.
    An edit is validated against today's tool registry (problems are 422 with their
    paths, nothing saved); a valid edit becomes the item's new plan version, which
    then waits for an approval (``approve: true`` approves it at once). A quorum item
    stays open until enough reviewers approved its current version.
    """
    user = _reviewer(request)
    binding = _binding(payload, _item(item_id))
    if payload.decision != "edit" and payload.plan is not None:
        raise field_error("plan", "unexpected", "Send a plan only with the `edit` decision.")
    if payload.decision == "approve":
        review_approve(
            item_id=item_id,
            user=user,
            binding=binding,
            checklist=payload.checklist,
            reason=payload.reason.strip(),
        )
    elif payload.decision == "reject":
        if not payload.reason.strip():
            raise field_error("reason", "required", "Give a reason for the rejection.")
        review_reject(item_id=item_id, user=user, reason=payload.reason.strip(), binding=binding)
    else:
        review_edit(
            item_id=item_id,
            user=user,
            document=edited_plan(payload.plan),
            binding=binding,
            approve=payload.approve,
            checklist=payload.checklist,
            reason=payload.reason.strip(),
        )
    return _item(item_id)


def _binding(payload: DecideIn, item: ReviewItem) -> Binding:
    """What the decision names; 422 when a required part is missing."""
    if payload.decision != "reject" and payload.plan_version is None:
        raise field_error(
            "plan_version",
            "required",
            "Name the plan version you reviewed (the item's `plan_version`).",
        )
    gate = payload.decision == "approve" and item.kind == ReviewKind.STEP_GATE
    if gate and not payload.params_hash:
        raise field_error(
            "params_hash",
            "required",
            "Name the gated step's params you reviewed (the item's `params_hash`).",
        )
    if payload.approve and payload.decision != "edit":
        raise field_error("approve", "unexpected", "`approve` goes only with the `edit` decision.")
    return Binding(
        plan_version=payload.plan_version,
        plan_hash=payload.plan_hash or "",
        params_hash=payload.params_hash or "",
    )


# --------------------------------------------------------------------------- audit
