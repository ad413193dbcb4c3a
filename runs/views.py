"""Server-rendered pages (placeholder until the pages land)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from runs.permissions import can_view_runs, role_required


@role_required(can_view_runs)
def run_list(request: HttpRequest) -> HttpResponse:
    return render(request, "runs/run_list.html", {})
