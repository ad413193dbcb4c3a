"""The run page's planning parts: "Save as playbook", and its forecast against the actual."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from runs.lifecycle.errors import RunError
from runs.lifecycle.planning_forecast import run_forecast
from runs.lifecycle.playbooks import PlaybookNameError, playbook_save_from_run
from runs.models import Run
from runs.permissions import can_view_runs, role_required


@require_POST
@role_required(can_view_runs)
def run_save_playbook(request: HttpRequest, run_id: int) -> HttpResponse:
    """Operators and reviewers save the plan under a name; refusals come back as messages."""
    name = request.POST.get("name", "").strip()[:100]
    try:
        playbook = playbook_save_from_run(
            run_id=run_id,
            name=name,
            task_text=request.POST.get("task_text", "")[:2000].replace("\x00", ""),
            user=request.user,
        )
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    except (RunError, PlaybookNameError) as exc:
        messages.error(request, str(exc))
        return redirect("runs:detail", run_id=run_id)
    messages.success(
        request,
        f"Saved as playbook {playbook.name}: the offline planner reuses it for similar tasks.",
    )
    return redirect("runs:detail", run_id=run_id)


@require_GET
@role_required(can_view_runs)
def run_forecast_fragment(request: HttpRequest, run_id: int) -> HttpResponse:
    """The forecast block, loaded after the page (it reads the step history of every tool)."""
    run = Run.objects.select_related("current_plan").filter(pk=run_id).first()
    if run is None:
        raise Http404("No such run.")
    return render(request, "runs/_forecast.html", {"forecast": run_forecast(run)})
