"""API endpoints for the audit trail: the hash-chained history, as pages or CSV."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, StreamingHttpResponse
from ninja import Query, Router

from reviews import selectors
from reviews.api.schemas.audit import AuditFiltersIn, AuditPageOut
from reviews.audit import audit_csv_rows
from reviews.selectors import AuditFilters
from runs.api.auth import role_auth
from runs.api.errors import ERRORS
from runs.api.paging import OFFSET, limit_param, offset_page
from runs.permissions import is_reviewer

audit_router = Router(tags=["audit"], auth=role_auth(is_reviewer, "review"))


@audit_router.get("", response={200: AuditPageOut, **ERRORS}, summary="Audit entries")
def audit_list(
    request: HttpRequest,
    filters: Query[AuditFiltersIn],
    limit: int = limit_param(100),
    offset: int = OFFSET,
) -> dict[str, Any]:
    """The append-only, hash-chained trail, newest first, per run, item or actor."""
    entries = selectors.audit_entries(_audit_filters(filters)).order_by("-seq")
    return offset_page(entries, limit=limit, offset=offset)


@audit_router.get(
    "/csv",
    response={200: None, **ERRORS},
    summary="Audit entries as CSV",
    openapi_extra={
        "responses": {
            200: {  # the int key ninja uses: a "200" string would be a second 200
                "description": "CSV, header first, oldest entry first.",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        }
    },
)
def audit_csv(request: HttpRequest, filters: Query[AuditFiltersIn]) -> StreamingHttpResponse:
    """The same entries as a CSV download (streamed, oldest first), for spreadsheets and archives."""
    entries = selectors.audit_entries(_audit_filters(filters)).iterator(chunk_size=1000)
    response = StreamingHttpResponse(audit_csv_rows(entries), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="audit.csv"'
    return response


def _audit_filters(filters: AuditFiltersIn) -> AuditFilters:
    return AuditFilters(run=filters.run, item=filters.item, actor=filters.actor or "")
