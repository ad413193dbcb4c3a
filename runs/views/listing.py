"""The runs list: filters, search, pagination; its table refreshes live through htmx."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from runs import selectors
from runs.permissions import AuthenticatedHttpRequest, can_view_runs, role_required
from runs.views.filters import RunFilterForm

RUNS_PER_PAGE = 50


@require_GET
@role_required(can_view_runs)
def run_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Every run matching the filters, newest first, 50 a page; htmx requests get the table only."""
    form = RunFilterForm(request.GET)
    form.is_valid()  # errors are shown next to their field; the valid filters still apply
    filters = form.filters()
    page = Paginator(selectors.IdPages(selectors.run_search(**filters)), RUNS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    selectors.attach_step_outcomes(list(page.object_list))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "form": form,
        "filtered": bool(filters),
        "query": query.urlencode(),
        "submitters": selectors.run_submitters(),
        "heartbeat_seconds": HEARTBEAT_SECONDS,
    }
    template = "runs/_run_table.html" if request.htmx else "runs/run_list.html"
    return render(request, template, context)


# How often live pages ping their websocket (and so how soon they notice a dead one).
HEARTBEAT_SECONDS = 15
