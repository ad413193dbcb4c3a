"""A run's whole transcript, a page at a time, oldest pages reached from the run page.

The run page shows the newest ``TRANSCRIPT_LIMIT`` events; this page shows any
stretch of them. Seqs are gap-free from 1, so a page is "the events before seq N"
and its neighbours are found by arithmetic, not by counting rows.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET

from runs import selectors
from runs.models import Run
from runs.permissions import can_view_runs, role_required
from runs.views.detail import TRANSCRIPT_LIMIT, event_rows


@require_GET
@role_required(can_view_runs)
def run_transcript(request: HttpRequest, run_id: int) -> HttpResponse:
    """The ``TRANSCRIPT_LIMIT`` events before ``?before=<seq>`` (the newest without it)."""
    raw = request.GET.get("before", "")
    before = int(raw) if raw.isascii() and raw.isdigit() else None
    if raw and (before is None or before < 1):
        return HttpResponseBadRequest(
            "before must be a whole number of 1 or more: the seq a page of events ends before."
        )
    run = Run.objects.select_related("task").filter(pk=run_id).first()
    if run is None:
        raise Http404("No such run.")
    events = selectors.run_events(run.pk)
    page = events.filter(seq__lt=before) if before is not None else events
    rows = list(page.order_by("-seq")[:TRANSCRIPT_LIMIT])[::-1]
    first = rows[0].seq if rows else 0
    last = rows[-1].seq if rows else 0
    # Without ``before`` the page is the newest one.
    has_newer = bool(rows) and before is not None and events.filter(seq__gt=last).exists()
    return render(
        request,
        "runs/run_transcript.html",
        {
            "run": run,
            "events": event_rows(rows),
            "first_seq": first,
            "last_seq": last,
            "older_before": first if first > 1 else None,
            "newer_before": last + TRANSCRIPT_LIMIT + 1 if has_newer else None,
        },
    )
