"""The audit log page and its CSV download."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from reviews import selectors
from reviews.audit import audit_check, audit_csv_rows
from reviews.selectors import AuditFilters
from reviews.views.common import reviewer_required

AUDIT_PER_PAGE = 100


@require_GET
@reviewer_required
def audit_log(request: HttpRequest) -> HttpResponse:
    """The audit trail, per run, per item or per reviewer."""
    filters = AuditFilters.parse(request.GET)
    for problem in filters.problems:
        messages.warning(request, problem + " That filter was ignored.")
    entries = selectors.audit_entries(filters).order_by("-seq")
    page = Paginator(entries, AUDIT_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "reviews/audit.html",
        {
            "page": page,
            "filters": filters,
            "query": query.urlencode(),
            "actors": selectors.audit_actors(),
            "chain": audit_check(),
        },
    )


@require_GET
@reviewer_required
def audit_csv(request: HttpRequest) -> StreamingHttpResponse:
    filters = AuditFilters.parse(request.GET)
    entries = selectors.audit_entries(filters).iterator(chunk_size=1000)
    response = StreamingHttpResponse(audit_csv_rows(entries), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="audit.csv"'
    return response
