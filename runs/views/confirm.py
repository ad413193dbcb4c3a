"""The run page's plan confirmation: the submitter confirms (as shown or edited) or discards."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from reviews.statemachine import PlanInvalid
from runs.lifecycle import confirmation
from runs.lifecycle.errors import RunError
from runs.models import Run, RunStatus
from runs.permissions import can_view_runs, role_required
from runs.planning.schema import PlanSyntaxError, parse_plan_text

MAX_PLAN_CHARS = 200_000


def _version(request: HttpRequest) -> int | None:
    raw = request.POST.get("plan_version", "")
    return int(raw) if raw.isdigit() and len(raw) < 8 else None


def _edited(request: HttpRequest) -> Any:
    """The edited plan from the form; None when the editor was left as shown (or empty)."""
    text = request.POST.get("plan", "")
    if request.POST.get("edited") != "1" or not text.strip():
        return None
    if len(text) > MAX_PLAN_CHARS:
        raise RunError(f"The edited plan is longer than {MAX_PLAN_CHARS} characters.")
    try:
        return parse_plan_text(text)
    except PlanSyntaxError as exc:
        raise RunError(f"The edited plan is not valid YAML or JSON: {exc}") from exc


@require_POST
@role_required(can_view_runs)
def run_confirm(request: HttpRequest, run_id: int) -> HttpResponse:
    """Confirm the waiting plan (or the edit in the page's editor); refusals are messages."""
    try:
        run = confirmation.run_confirm(
            run_id=run_id,
            user=request.user,  # type: ignore[arg-type]
            plan_version=_version(request),
            document=_edited(request),
            reason=request.POST.get("reason", "")[: confirmation.MAX_REASON_CHARS],
        )
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    except PlanInvalid as exc:
        problems = "; ".join(
            f"{p.get('path') or 'plan'}: {p.get('message', '')}" for p in exc.problems[:5]
        )
        messages.error(request, f"The edited plan has problems; nothing was saved: {problems}")
    except RunError as exc:
        messages.error(request, str(exc))
    else:
        if run.status == RunStatus.AWAITING_APPROVAL:
            messages.info(request, f"Run {run_id}: confirmed; the plan now waits for a reviewer.")
        else:
            messages.success(request, f"Run {run_id}: plan confirmed; it runs now.")
    return redirect("runs:detail", run_id=run_id)


@require_POST
@role_required(can_view_runs)
def run_discard(request: HttpRequest, run_id: int) -> HttpResponse:
    """Discard the waiting plan: the run ends cancelled."""
    try:
        confirmation.run_discard(
            run_id=run_id,
            user=request.user,  # type: ignore[arg-type]
            plan_version=_version(request),
            reason=request.POST.get("reason", "")[: confirmation.MAX_REASON_CHARS],
        )
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    except RunError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run {run_id}: plan discarded; the run is cancelled.")
    return redirect("runs:detail", run_id=run_id)
