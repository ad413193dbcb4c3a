"""The answer form of a run waiting on the planner's clarifying question."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from runs.lifecycle import questions
from runs.lifecycle.errors import RunError
from runs.models import Run
from runs.permissions import can_view_runs, role_required


@require_POST
@role_required(can_view_runs)
def run_answer(request: HttpRequest, run_id: int) -> HttpResponse:
    """Store the answer (the submitter's or a reviewer's) and send the run back to its planner."""
    # An option's button names that option, whatever the text field holds.
    answer = request.POST.get("option") or request.POST.get("answer", "")
    try:
        questions.run_answer(
            run_id=run_id,
            user=request.user,  # type: ignore[arg-type]
            answer=answer[: questions.MAX_ANSWER_CHARS + 1],
        )
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    except RunError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run {run_id}: answered; the planner plans again.")
    return redirect("runs:detail", run_id=run_id)
