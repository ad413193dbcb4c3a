"""Server-rendered pages: run list, new run, run detail (live), cancel, tool registry, login.

Views parse input, check the role, call a service or selector, render.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from runs import selectors, services
from runs.demo import DEMO_USERS, demo_password_is_username, demo_plan, demo_plans
from runs.forms import NewRunForm
from runs.models import Run, RunStatus, Step, StepStatus, Tool
from runs.permissions import can_view_runs, is_operator, role_required
from runs.planning.validation import validate_plan
from runs.selectors import STATUS_MARK
from runs.statemachine import RUN_TERMINAL, STEP_FINISHED
from runs.tools.registry import load_tool_specs

RUNS_PER_PAGE = 50
# The detail page renders at most this many transcript events (the newest ones).
TRANSCRIPT_LIMIT = 1000
_SUMMARY_LIMIT = 200


# --------------------------------------------------------------------------- run list
@require_GET
@role_required(can_view_runs)
def run_list(request: HttpRequest) -> HttpResponse:
    """Every run, newest first, 50 a page, optionally one status only."""
    status = request.GET.get("status", "")
    runs = selectors.run_list().annotate(
        steps_total=Count("current_plan__steps", filter=Q(current_plan__steps__phase="main")),
        steps_succeeded=Count(
            "current_plan__steps",
            filter=Q(
                current_plan__steps__phase="main",
                current_plan__steps__status=StepStatus.SUCCEEDED,
            ),
        ),
    )
    if status in RunStatus.values:
        runs = runs.filter(status=status)
    elif status:
        messages.warning(request, f"There is no run status {status[:40]!r}; showing every run.")
        status = ""
    page = Paginator(runs.order_by("-created_at", "-id"), RUNS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "runs/run_list.html",
        {"page": page, "status": status, "statuses": RunStatus.values},
    )


# --------------------------------------------------------------------------- new run
@require_http_methods(["GET", "POST"])
@role_required(is_operator)
def run_new(request: HttpRequest) -> HttpResponse:
    """A form for a hand-written plan; only a plan without problems becomes a run."""
    chosen = request.GET.get("demo", "")
    if request.method == "POST":
        form = NewRunForm(request.POST)
        if form.is_valid():
            validated = validate_plan(
                form.document,
                tools=load_tool_specs(),
                max_steps=settings.PLANNERWEB_MAX_PLAN_STEPS,
            )
            if validated.is_valid:
                run = services.run_submit_plan(
                    title=form.cleaned_data["title"],
                    document=form.document,
                    submitted_by=request.user,  # type: ignore[arg-type]
                    max_parallel=form.cleaned_data["max_parallel"],
                    validated=validated,
                )
                messages.success(request, f"Run {run.pk} submitted ({run.status}).")
                return redirect("runs:detail", run_id=run.pk)
            form.add_plan_problems(
                [{"path": p.path, "code": p.code, "message": p.message} for p in validated.problems]
            )
    else:
        demo = demo_plan(chosen) if chosen else None
        if chosen and demo is None:
            messages.warning(request, f"There is no demo plan {chosen[:40]!r}.")
        initial = {"title": demo.goal, "plan": demo.text} if demo else {}
        form = NewRunForm(initial=initial)
    return render(
        request,
        "runs/run_new.html",
        {"form": form, "demos": demo_plans(), "chosen": chosen},
    )


# --------------------------------------------------------------------------- run detail
@dataclass(frozen=True)
class StepRow:
    step: Step
    mark: str
    duration: timedelta | None
    params_json: str
    result_json: str


@dataclass(frozen=True)
class EventRow:
    seq: int
    at: Any
    role: str
    kind: str
    summary: str


@require_GET
@role_required(can_view_runs)
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """One run: its steps, rollback steps, plan versions and transcript; live over a websocket."""
    run = get_object_or_404(selectors.run_list(), pk=run_id)
    rows = [_step_row(s) for s in selectors.run_steps(run.pk).select_related("tool")]
    main = [r for r in rows if r.step.phase == Step.Phase.MAIN]
    rollback = [r for r in rows if r.step.phase == Step.Phase.ROLLBACK]
    events = list(selectors.run_events(run.pk).order_by("-seq")[:TRANSCRIPT_LIMIT])
    events.reverse()
    last_seq = events[-1].seq if events else 0
    return render(
        request,
        "runs/run_detail.html",
        {
            "run": run,
            "main_steps": main,
            "rollback_steps": rollback,
            "finished_steps": sum(1 for r in main if r.step.status in STEP_FINISHED),
            "plans": run.plans.select_related("created_by").order_by("-version"),
            "events": [
                EventRow(e.seq, e.created_at, e.role, e.kind, event_summary(e.kind, e.payload))
                for e in events
            ],
            "events_hidden": (
                selectors.run_events(run.pk).count() - len(events)
                if len(events) == TRANSCRIPT_LIMIT
                else 0
            ),
            "last_seq": last_seq,
            "is_finished": run.status in RUN_TERMINAL,
            "live_config": {
                "run": run.pk,
                "lastSeq": last_seq,
                "finished": run.status in RUN_TERMINAL,
                "runTerminal": sorted(RUN_TERMINAL),
                "stepFinished": sorted(STEP_FINISHED),
                "marks": {str(k): v for k, v in STATUS_MARK.items()},
            },
        },
    )


def _step_row(step: Step) -> StepRow:
    duration = step.finished_at - step.started_at if step.started_at and step.finished_at else None
    return StepRow(
        step=step,
        mark=STATUS_MARK.get(step.status, "?"),  # type: ignore[call-overload]
        duration=duration,
        params_json=_pretty(step.params),
        result_json=_pretty(step.result) if step.result is not None else "",
    )


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def event_summary(kind: str, payload: dict[str, Any]) -> str:
    """One line about a transcript event (``static/run.js`` mirrors this for live rows)."""
    p = payload if isinstance(payload, dict) else {}
    if kind == "run.created":
        text = f"task '{p.get('task')}' submitted by {p.get('submitted_by') or 'the system'}"
    elif kind == "run.status":
        text = f"run {p.get('from_status')} → {p.get('to_status')}" + _suffix(p.get("reason"))
    elif kind == "run.cancel_requested":
        text = f"cancel requested by {p.get('by') or 'the system'}"
    elif kind == "plan.created":
        if p.get("valid"):
            text = f"plan v{p.get('version')} ({p.get('source')}): {p.get('steps')} steps"
        else:
            errors = p.get("errors") or []
            first = errors[0].get("message", "") if errors and isinstance(errors[0], dict) else ""
            text = (
                f"plan v{p.get('version')} ({p.get('source')}) is invalid: "
                f"{len(errors)} problem(s)" + _suffix(first)
            )
    elif kind == "step.status":
        attempt = f" (attempt {p['attempt']})" if p.get("attempt", 0) > 1 else ""
        text = f"{p.get('step')} {p.get('from_status')} → {p.get('to_status')}{attempt}" + _suffix(
            p.get("error") or p.get("reason")
        )
    elif kind == "step.retrying":
        text = (
            f"{p.get('step')} retries (attempt {p.get('attempt')}) in "
            f"{p.get('delay_seconds')}s" + _suffix(p.get("error"))
        )
    else:
        text = json.dumps(p, ensure_ascii=False, default=str)
    return text if len(text) <= _SUMMARY_LIMIT else text[: _SUMMARY_LIMIT - 1] + "…"


def _suffix(text: Any) -> str:
    return f": {text}" if text else ""


# --------------------------------------------------------------------------- cancel
@require_POST
@role_required(is_operator)
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    """Cancel a run; a run that already ended gets a message, not an error page."""
    try:
        run = services.run_cancel(run_id=run_id, user=request.user)  # type: ignore[arg-type]
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    except services.RunError as exc:
        messages.error(request, str(exc))
    else:
        if run.status == RunStatus.CANCELLED:
            messages.success(request, f"Run {run_id} cancelled.")
        else:
            messages.info(request, f"Run {run_id}: cancel requested; running steps are stopped.")
    return redirect("runs:detail", run_id=run_id)


# --------------------------------------------------------------------------- tools
@dataclass(frozen=True)
class ParameterRow:
    name: str
    type: str
    required: bool
    description: str
    enum: list[Any] | None
    default: str


@require_GET
@role_required(can_view_runs)
def tool_list(request: HttpRequest) -> HttpResponse:
    """The tool registry with each tool's parameters."""
    tools = [(tool, _parameters(tool.parameters_schema)) for tool in Tool.objects.order_by("name")]
    return render(request, "runs/tool_list.html", {"tools": tools})


def _parameters(schema: Any) -> list[ParameterRow]:
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return []
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    rows = []
    for name, prop in schema["properties"].items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type", "any")
        rows.append(
            ParameterRow(
                name=str(name),
                type=" | ".join(map(str, kind)) if isinstance(kind, list) else str(kind),
                required=name in required,
                description=str(prop.get("description", "")),
                enum=prop["enum"] if isinstance(prop.get("enum"), list) else None,
                default=json.dumps(prop["default"], ensure_ascii=False)
                if "default" in prop
                else "",
            )
        )
    return rows


# --------------------------------------------------------------------------- login
class LoginView(auth_views.LoginView):
    """Django's login page, listing the demo accounts when DEBUG or PLANNERWEB_SHOW_DEMO_LOGINS."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        show = settings.DEBUG or getattr(settings, "PLANNERWEB_SHOW_DEMO_LOGINS", False)
        context["demo_logins"] = (
            [
                {
                    "username": u.username,
                    "password": u.username if demo_password_is_username() else None,
                    "does": u.does,
                }
                for u in DEMO_USERS
            ]
            if show
            else []
        )
        return context
