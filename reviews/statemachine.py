"""The review item state machine and its domain errors: the only place that decides an item.

``open → approved | rejected | edited | expired``. A decision is a compare-and-swap
on ``status = open`` under the item's row lock, so of two reviewers deciding at
the same moment exactly one wins and the other learns who did.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from reviews.models import ReviewItem, ReviewStatus
from runs.redaction import Redactor
from runs.statemachine import lock_rows

RS = ReviewStatus
REVIEW_TRANSITIONS: dict[str, frozenset[str]] = {
    RS.OPEN: frozenset({RS.APPROVED, RS.REJECTED, RS.EDITED, RS.EXPIRED}),
    RS.APPROVED: frozenset(),
    RS.REJECTED: frozenset(),
    RS.EDITED: frozenset(),
    RS.EXPIRED: frozenset(),
}


class ReviewError(Exception):
    """A decision or request the item cannot take in its current state; nothing was written."""

    code = "review_error"


class AlreadyDecided(ReviewError):
    code = "already_decided"

    def __init__(self, item: ReviewItem) -> None:
        who = item.decided_by.get_username() if item.decided_by else "the system"
        super().__init__(f"Review {item.pk} was already {item.status} by {who}.")
        self.item = item


class ChecklistIncomplete(ReviewError):
    code = "checklist_incomplete"

    def __init__(self, missing: list[str]) -> None:
        super().__init__("Tick every checklist item first: " + "; ".join(missing))
        self.missing = missing


class FourEyesViolation(ReviewError):
    code = "four_eyes"


class NotAllowed(ReviewError):
    code = "not_allowed"


class StalePlan(ReviewError):
    """The decision names another plan version, document or step params than the item's current ones."""

    code = "stale_plan"


class UnsavedEdit(ReviewError):
    """Approving while the editor holds changes: approving would drop them silently."""

    code = "unsaved_edit"


class PlanInvalid(ReviewError):
    """An edited plan failed validation; ``problems`` are ``{"path", "code", "message"}`` dicts."""

    code = "invalid_plan"

    def __init__(self, problems: list[dict[str, str]]) -> None:
        count = len(problems)
        super().__init__(f"The edited plan has {count} problem{'s' * (count != 1)}; nothing saved.")
        self.problems = problems


class ActionNotAllowed(ReviewError):
    """An escalation action that does not fit the run's state; ``allowed`` lists those that do."""

    code = "action_not_allowed"

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class DecisionInputInvalid(ReviewError):
    """A decision's own input is wrong (say, new budgets that leave no room); ``field`` names it."""

    code = "invalid_input"

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def lock_item(item_id: int) -> ReviewItem:
    """The item under its row lock (PostgreSQL); call inside a transaction."""
    return lock_rows(ReviewItem.objects.filter(pk=item_id)).get()


def lock_open_item(item_id: int) -> ReviewItem:
    item = lock_item(item_id)
    if item.status != RS.OPEN:
        raise AlreadyDecided(item)
    return item


@transaction.atomic(durable=False)
def review_transition(
    *,
    item: ReviewItem,
    to: str,
    by: User | None,
    decision: str,
    reason: str = "",
    **fields: Any,
) -> ReviewItem:
    """Decide an open item: CAS on ``status=open``; the loser gets ``AlreadyDecided``."""
    if to not in REVIEW_TRANSITIONS.get(item.status, frozenset()):
        raise (
            AlreadyDecided(item)
            if item.status != RS.OPEN
            else ReviewError(f"review {item.pk} cannot go from {item.status} to {to}")
        )
    now = timezone.now()
    changes: dict[str, Any] = {
        "status": to,
        "decided_by": by,
        "decided_at": now,
        "decision": decision,
        "reason": Redactor(item.run_id).text(reason),
        **fields,
    }
    won = ReviewItem.objects.filter(pk=item.pk, status=RS.OPEN).update(**changes)
    if not won:
        raise AlreadyDecided(ReviewItem.objects.select_related("decided_by").get(pk=item.pk))
    for name, value in changes.items():
        setattr(item, name, value)
    return item
