"""The review queue: filters, pagination; its table refreshes live through htmx."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from reviews import policies, selectors
from reviews.models import ReviewKind, ReviewStatus
from reviews.selectors import AGES, RISK_LEVELS, SORTS, QueueFilters
from reviews.views.common import reviewer_required
from runs.permissions import AuthenticatedHttpRequest
from runs.selectors import IdPages, attach_step_outcomes
from runs.views.listing import HEARTBEAT_SECONDS

ITEMS_PER_PAGE = 50


@require_GET
@reviewer_required
def queue(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Open items, overdue first then by due time (or by risk, age, submitter); filtered, paginated."""
    filters = QueueFilters.parse(request.GET)
    if not request.htmx:
        # A live refresh would queue the same warning again and again.
        for problem in filters.problems:
            messages.warning(request, problem + " That filter was ignored.")
    threshold = policies.global_policy().threshold
    items = selectors.review_queue(filters, user=request.user)
    # Ids first: a deep page walks the order's index, not every skipped row's joins.
    page = Paginator(IdPages(items), ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    attach_step_outcomes([item.run for item in page.object_list])
    query = request.GET.copy()
    query.pop("page", None)
    # htmx asks for the table alone when the queue changed (static/reviews/queue.js).
    template = "reviews/_queue_table.html" if request.htmx else "reviews/queue.html"
    return render(
        request,
        template,
        {
            "page": page,
            "filters": filters,
            "kinds": ReviewKind.choices,
            "statuses": [*ReviewStatus.values, "all"],
            "ages": list(AGES),
            "sorts": [(name, label) for name, (label, _) in SORTS.items()],
            "risks": list(RISK_LEVELS),
            "threshold": threshold,
            "now": timezone.now(),
            "reviewers": selectors.reviewers(),
            "query": query.urlencode(),
            "heartbeat_seconds": HEARTBEAT_SECONDS,
        },
    )
