"""Answer forms: the planner's clarifying question, and a tool's question during a call."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from reviews.models import ReviewItem, ReviewKind
from runs.lifecycle import elicitation, questions
from runs.lifecycle.errors import RunError
from runs.models import Run
from runs.permissions import can_view_runs, is_reviewer, role_required


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


@require_POST
@role_required(can_view_runs)
def run_elicitation_answer(request: HttpRequest, run_id: int, item_id: int) -> HttpResponse:
    """Answer a tool's question from its form (the submitter's or a reviewer's); the call continues."""
    item = ReviewItem.objects.filter(pk=item_id, run_id=run_id, kind=ReviewKind.ELICITATION).first()
    if item is None:
        raise Http404("No such question.")
    action = request.POST.get("action", "")
    try:
        content = elicitation.form_content(item, request.POST) if action == "accept" else None
        elicitation.elicitation_answer(
            run_id=run_id,
            item_id=item_id,
            user=request.user,  # type: ignore[arg-type]
            action=action,
            content=content,
        )
    except RunError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run {run_id}: answered ({action}); the tool's call continues.")
    if is_reviewer(request.user):
        return redirect("reviews:item", item_id=item_id)
    return redirect("runs:detail", run_id=run_id)
