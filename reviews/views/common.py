"""What every review page shares: the role check and the item lookup."""

from __future__ import annotations

from django.http import Http404

from reviews import selectors
from reviews.models import EscalationAction, ReviewItem
from runs.permissions import is_reviewer, role_required

# The escalation actions that carry the plan text area's document.
PLAN_ACTIONS = (EscalationAction.EDIT, EscalationAction.WRITE_PLAN)

reviewer_required = role_required(is_reviewer)


def get_item(item_id: int) -> ReviewItem:
    try:
        return selectors.review_item(item_id)
    except ReviewItem.DoesNotExist:
        raise Http404("No such review item.") from None
