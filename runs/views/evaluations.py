"""The evaluations page (suite trends, planners compared) and "save as golden task"."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from runs.evals.dashboard import PLOT_H, PLOT_W, planner_comparison, suite_trends
from runs.evals.golden import GoldenError, golden_task_save
from runs.models import Run
from runs.permissions import can_view_runs, is_operator, role_required


@require_GET
@role_required(can_view_runs)
def evaluation_list(request: HttpRequest) -> HttpResponse:
    """Each suite's latest run and trend, and the planners compared on the same suites."""
    return render(
        request,
        "runs/evaluations.html",
        {
            "trends": suite_trends(),
            "planners": planner_comparison(),
            "plot_w": PLOT_W,
            "plot_h": PLOT_H,
        },
    )


@require_POST
@role_required(is_operator)
def run_save_golden(request: HttpRequest, run_id: int) -> HttpResponse:
    """Keep a finished run's task, plan and outcome (and its cassette) as a golden task."""
    suite_name = request.POST.get("suite", "golden")[:200]
    try:
        saved = golden_task_save(run_id=run_id, suite_name=suite_name)
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    except GoldenError as exc:
        messages.error(request, str(exc))
    else:
        name = saved.suite.name
        command = f"manage.py evaluate {name}" + (" --replay" if saved.cassette else "")
        tape = " with its recorded model answers" if saved.cassette else ""
        messages.success(request, f"Saved as task {saved.task} of suite {name}{tape}: {command}")
    return redirect("runs:detail", run_id=run_id)
