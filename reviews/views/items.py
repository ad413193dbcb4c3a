"""Review pages: an item (plan table, graph edges, decisions) and the decisions posted from it.

Every view is for reviewers (staff included): anonymous users go to the login
page, everyone else gets 403. Views parse, call a service, and redirect or render.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import yaml
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from reviews import selectors
from reviews.actions import action_labels, allowed_actions
from reviews.decisions import Binding, review_assign, review_claim
from reviews.models import EscalationAction, ReviewItem, ReviewKind, ReviewStatus
from reviews.policies import four_eyes_applies
from reviews.selectors import AuditFilters
from reviews.statemachine import (
    ChecklistIncomplete,
    DecisionInputInvalid,
    PlanInvalid,
    ReviewError,
    UnsavedEdit,
)
from reviews.views.common import PLAN_ACTIONS, get_item, reviewer_required
from runs.execution.budgets import budgets_for
from runs.graph import plan_layout
from runs.lifecycle import escalations
from runs.lifecycle.elicitation import form_fields
from runs.lifecycle.planning_forecast import plan_forecast_for
from runs.lifecycle.reviews import (
    EditPreview,
    review_approve,
    review_edit,
    review_edit_preview,
    review_reject,
)
from runs.models import Step
from runs.permissions import AuthenticatedHttpRequest
from runs.plan_versions import plan_hash
from runs.planning.schema import PlanSyntaxError, parse_plan_text
from runs.selectors import STATUS_MARK
from runs.tools.kinds.agent import step_instruction
from runs.tools.kinds.llm import step_prompt
from runs.views.forms import BudgetFields


# --------------------------------------------------------------------------- item
@require_GET
@reviewer_required
def item_detail(request: HttpRequest, item_id: int) -> HttpResponse:
    item = get_item(item_id)
    return _render_item(request, item)


def _render_item(
    request: HttpRequest,
    item: ReviewItem,
    *,
    plan_text: str | None = None,
    problems: list[dict[str, str]] | None = None,
    syntax_error: str = "",
    decision_error: ReviewError | str | None = None,
    preview: EditPreview | None = None,
    status: int = 200,
) -> HttpResponse:
    steps = selectors.plan_steps(item.plan)
    for s in steps:
        s.params_json = json.dumps(s.params, indent=2, ensure_ascii=False)  # type: ignore[attr-defined]
        s.prompt = step_prompt(s.tool, s.params)  # type: ignore[attr-defined]
        s.agent = step_instruction(s.tool, s.params)  # type: ignore[attr-defined]
    main = [s for s in steps if s.phase == Step.Phase.MAIN]
    rollback = [s for s in steps if s.phase == Step.Phase.ROLLBACK]
    ticked = set(request.POST.getlist("checklist")) if request.method == "POST" else set()
    allowed = allowed_actions(item, item.run)
    document = item.plan.document if item.plan is not None else None
    stored_text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True) if document else ""
    if plan_text is None:
        plan_text = stored_text
        if not document and EscalationAction.WRITE_PLAN in allowed:
            skeleton = {"goal": item.run.task.title, "steps": []}
            plan_text = yaml.safe_dump(skeleton, sort_keys=False, allow_unicode=True)
    return render(
        request,
        "reviews/item.html",
        {
            "item": item,
            "main_steps": main,
            "rollback_steps": rollback,
            "edges": selectors.plan_edges(main),
            **_plan_graph(main, rollback),
            # A form sent back (a refusal, problems shown inline) keeps its ticks and reason.
            "checklist": [
                (i, text, str(i) in ticked) for i, text in enumerate(item.checklist or [])
            ],
            "reason_text": request.POST.get("reason", "") if request.method == "POST" else "",
            "approvals": list(item.approvals.all()),
            "reviewers": selectors.reviewers(),
            "four_eyes": item.kind == ReviewKind.PLAN_APPROVAL
            and four_eyes_applies(item.run.task, request.user),
            "plan_text": plan_text,
            "stored_text": stored_text,
            "elicitation_fields": form_fields(item) if item.kind == ReviewKind.ELICITATION else [],
            "elicitation_schema": json.dumps(
                item.context.get("schema") or {}, indent=2, ensure_ascii=False
            ),
            "plan_hash": plan_hash(item.plan),
            "problems": problems or [],
            "syntax_error": syntax_error,
            # A refused decision is shown next to the field it is about, in the panel.
            "decision_error": str(decision_error) if decision_error else "",
            "error_field": _error_field(decision_error),
            "preview": preview.diff if preview is not None else None,
            "budget_values": {
                name: request.POST.get(name, "") if request.method == "POST" else ""
                for name in BUDGET_INPUTS
            },
            "upstream": _upstream(item, main),
            "next_checked": request.method == "POST" and request.POST.get("next") == "1",
            "actions": action_labels(allowed),
            "plan_actions": [a for a in allowed if a in PLAN_ACTIONS],
            "can_raise_budget": EscalationAction.RAISE_BUDGET in allowed,
            "budgets": budgets_for(item.run.task),
            "audit": selectors.audit_entries(AuditFilters(item=item.pk)),
            "context_json": json.dumps(item.context, indent=2, ensure_ascii=False, default=str),
            "is_overdue": item.is_open and item.due_at is not None and item.due_at < timezone.now(),
            "forecast": plan_forecast_for(item.plan)
            if item.kind == ReviewKind.PLAN_APPROVAL
            else None,
        },
        status=status,
    )


def _error_field(exc: ReviewError | str | None) -> str:
    """Which field of the decision panel a refusal is about ("" for the panel as a whole)."""
    if isinstance(exc, str):
        return "budgets" if exc else ""
    if isinstance(exc, UnsavedEdit):
        return "plan"
    if isinstance(exc, ChecklistIncomplete):
        return "checklist"
    if isinstance(exc, DecisionInputInvalid) and exc.field:
        return "reason" if "reason" in exc.field else exc.field
    if exc is not None and "reason" in str(exc).lower():
        return "reason"
    return ""


def _decide(
    request: HttpRequest,
    item_id: int,
    call: Callable[[], Any],
    done: Callable[[Any], str],
    *,
    keep: type[ReviewError] | None = None,
    in_panel: bool = False,
) -> HttpResponse:
    """Run a decision service; domain errors are shown on the item page, never a 500.

    An error of type ``keep`` is raised on for the caller to render the page with its input.
    ``in_panel``: a refused decision re-renders the page (409) with everything the reviewer
    entered, the error next to its field; else it is a message after a redirect. A decision
    made with "then open the next item" goes to the next open item in the queue.
    """
    try:
        result = call()
    except ReviewItem.DoesNotExist:
        raise Http404("No such review item.") from None
    except ReviewError as exc:
        if keep is not None and isinstance(exc, keep):
            raise
        item = get_item(item_id) if in_panel else None
        if item is not None and item.is_open:  # a closed item has no panel left to show it in
            text = request.POST.get("plan")
            return _render_item(request, item, plan_text=text, decision_error=exc, status=409)
        messages.error(request, str(exc))
    else:
        messages.success(request, done(result))
        if in_panel:
            return _next_or_item(request, item_id)
    return redirect("reviews:item", item_id=item_id)


def _ticks(request: HttpRequest) -> list[str]:
    return request.POST.getlist("checklist")


def _binding(request: HttpRequest, *, editor: bool = False, required: bool = True) -> Binding:
    """What the form's decision is about (its hidden fields); ``editor`` adds the editor's text.

    The page always sends the version; a form without it (or with one that is not a
    number) is refused as stale, unless not ``required`` (a rejection, an abort).
    """
    raw = request.POST.get("plan_version", "").strip()
    version = None if not raw else int(raw) if raw.isdigit() and len(raw) < 10 else 0
    return Binding(
        plan_version=version,
        plan_hash=request.POST.get("plan_hash", "").strip(),
        params_hash=request.POST.get("params_hash", "").strip(),
        editor_text=request.POST.get("plan") if editor and "plan" in request.POST else None,
        version_required=required,
    )


@require_POST
@reviewer_required
def item_claim(request: AuthenticatedHttpRequest, item_id: int) -> HttpResponse:
    return _decide(
        request,
        item_id,
        lambda: review_claim(item_id=item_id, user=request.user),
        lambda item: f"Review {item.pk} is yours.",
    )


@require_POST
@reviewer_required
def item_assign(request: AuthenticatedHttpRequest, item_id: int) -> HttpResponse:
    username = request.POST.get("assignee", "").strip()
    assignee = None
    if username:
        assignee = get_user_model().objects.filter(username=username).first()
        if assignee is None:
            messages.error(request, f"There is no user {username[:40]!r}.")
            return redirect("reviews:item", item_id=item_id)
    return _decide(
        request,
        item_id,
        lambda: review_assign(item_id=item_id, user=request.user, assignee=assignee),
        lambda item: f"Review {item.pk} assigned to {username or 'nobody'}.",
    )


def _approved_message(item: ReviewItem) -> str:
    if item.status == ReviewStatus.OPEN:
        return f"Approval recorded ({item.approvals.count()} of {item.required_approvals})."
    if item.status == ReviewStatus.EXPIRED:
        return f"The run had already ended; review {item.pk} is closed."
    return f"Review {item.pk} approved."


@require_POST
@reviewer_required
def item_approve(request: AuthenticatedHttpRequest, item_id: int) -> HttpResponse:
    """Approve the version the page showed; refused, with the edit kept, while the editor differs."""
    try:
        return _decide(
            request,
            item_id,
            lambda: review_approve(
                item_id=item_id,
                user=request.user,
                binding=_binding(request, editor=True),
                checklist=_ticks(request),
                reason=request.POST.get("reason", "").strip(),
            ),
            _approved_message,
            keep=UnsavedEdit,
            in_panel=True,
        )
    except UnsavedEdit as exc:
        text = request.POST.get("plan", "")
        return _render_item(
            request, get_item(item_id), plan_text=text, decision_error=exc, status=409
        )


@require_POST
@reviewer_required
def item_reject(request: AuthenticatedHttpRequest, item_id: int) -> HttpResponse:
    return _decide(
        request,
        item_id,
        lambda: review_reject(
            item_id=item_id,
            user=request.user,
            reason=request.POST.get("reason", ""),
            binding=_binding(request, required=False),
        ),
        lambda item: f"Review {item.pk} {item.status}.",
        in_panel=True,
    )


@require_POST
@reviewer_required
def item_edit(request: AuthenticatedHttpRequest, item_id: int) -> HttpResponse:
    """Save the reviewer's plan as a new version, which then waits for approval."""
    return _save(request, item_id, approve=False)


@require_POST
@reviewer_required
def item_save_approve(request: AuthenticatedHttpRequest, item_id: int) -> HttpResponse:
    """Save the reviewer's plan as a new version and approve it, in one step."""
    return _save(request, item_id, approve=True)


def _save(request: AuthenticatedHttpRequest, item_id: int, *, approve: bool) -> HttpResponse:
    """Store the editor's plan; syntax or validation problems and refusals are shown inline."""
    item = get_item(item_id)
    text = request.POST.get("plan", "")
    try:
        document = parse_plan_text(text)
    except PlanSyntaxError as exc:
        return _render_item(request, item, plan_text=text, syntax_error=str(exc), status=422)
    try:
        done = review_edit(
            item_id=item_id,
            user=request.user,
            document=document,
            binding=_binding(request),
            approve=approve,
            checklist=_ticks(request),
            reason=request.POST.get("reason", "").strip(),
        )
    except PlanInvalid as exc:
        return _render_item(request, item, plan_text=text, problems=exc.problems, status=422)
    except ReviewError as exc:
        return _refused(request, item_id, text, exc)
    messages.success(request, _saved_message(done, approve=approve))
    if approve and not done.is_open:
        return _next_or_item(request, item_id)
    return redirect("reviews:item", item_id=item_id)


def _refused(request: HttpRequest, item_id: int, text: str, exc: ReviewError) -> HttpResponse:
    """A refused decision: back to a closed item with the message, else the form kept (409)."""
    item = get_item(item_id)
    if not item.is_open:
        messages.error(request, str(exc))
        return redirect("reviews:item", item_id=item_id)
    return _render_item(request, item, plan_text=text, decision_error=exc, status=409)


def _next_or_item(request: HttpRequest, item_id: int) -> HttpResponse:
    """After a decision: the next open item when the reviewer asked for it, else this one."""
    if request.POST.get("next") != "1":
        return redirect("reviews:item", item_id=item_id)
    following = selectors.next_open_item(item_id)
    if following is None:
        messages.info(request, "No other item is waiting.")
        return redirect("reviews:queue")
    return redirect("reviews:item", item_id=following)


@require_POST
@reviewer_required
def item_preview(request: AuthenticatedHttpRequest, item_id: int) -> HttpResponse:
    """The editor's plan as a diff against the version under review; nothing is saved."""
    item = get_item(item_id)
    text = request.POST.get("plan", "")
    try:
        document = parse_plan_text(text)
    except PlanSyntaxError as exc:
        if request.htmx:
            return _preview_fragment(request, item, syntax_error=str(exc), status=422)
        return _render_item(request, item, plan_text=text, syntax_error=str(exc), status=422)
    preview = review_edit_preview(item=item, document=document)
    status = 422 if preview.diff is None else 200  # too large to save: the refusal, no diff
    if request.htmx:  # the editor's live preview (static/reviews/item.js): the diff alone
        return _preview_fragment(request, item, preview=preview, status=status)
    return _render_item(
        request, item, plan_text=text, preview=preview, problems=preview.problems, status=status
    )


def _preview_fragment(
    request: HttpRequest,
    item: ReviewItem,
    *,
    preview: EditPreview | None = None,
    syntax_error: str = "",
    status: int = 200,
) -> HttpResponse:
    """The live preview's part of the page: the diff, or why the edit cannot be saved."""
    context = {
        "item": item,
        "preview": preview.diff if preview is not None else None,
        "live_problems": preview.problems if preview is not None else [],
        "live_syntax_error": syntax_error,
    }
    return render(request, "reviews/_edit_preview.html", context, status=status)


def _saved_message(item: ReviewItem, *, approve: bool) -> str:
    version = item.plan.version if item.plan is not None else "?"
    if item.status == ReviewStatus.EXPIRED:
        return f"The run had already ended; review {item.pk} is closed."
    if not approve:
        return (
            f"Plan v{version} saved; it now waits for approval (earlier approvals no longer count)."
        )
    if item.status == ReviewStatus.OPEN:
        approvals = f"{item.approvals.count()} of {item.required_approvals}"
        return f"Plan v{version} saved with your approval ({approvals})."
    return f"Plan v{version} saved and approved; the run continues with it."


@require_POST
@reviewer_required
def item_resolve(request: AuthenticatedHttpRequest, item_id: int) -> HttpResponse:
    """An escalation's action (one of those it allows): the plan or new budgets it carries."""
    item = get_item(item_id)
    action = request.POST.get("action", "")
    text = request.POST.get("plan", "")
    document = None
    if action in PLAN_ACTIONS:
        try:
            document = parse_plan_text(text)
        except PlanSyntaxError as exc:
            return _render_item(request, item, plan_text=text, syntax_error=str(exc), status=422)
    budgets = BudgetFields(request.POST)
    if action == EscalationAction.RAISE_BUDGET and not budgets.is_valid():
        problem = " ".join(str(e) for errors in budgets.errors.values() for e in errors)
        return _render_item(
            request, item, plan_text=text, decision_error="New budgets: " + problem, status=422
        )
    try:
        resolution = escalations.review_resolve_escalation(
            item_id=item_id,
            user=request.user,
            action=action,
            reason=request.POST.get("reason", ""),
            checklist=_ticks(request),
            document=document,
            budgets=budgets.budgets() if action == EscalationAction.RAISE_BUDGET else None,
            # Retry, skip or roll back would drop an edit silently; editing uses it, abort needs none.
            binding=_binding(
                request,
                editor=action not in PLAN_ACTIONS and action != EscalationAction.ABORT,
                required=action != EscalationAction.ABORT,
            ),
        )
    except PlanInvalid as exc:
        return _render_item(request, item, plan_text=text, problems=exc.problems, status=422)
    except ReviewError as exc:
        return _refused(request, item_id, text, exc)
    messages.success(request, f"Escalation {item_id}: {resolution.action} recorded.")
    return _next_or_item(request, item_id)


def _plan_graph(main: list[Step], rollback: list[Step]) -> dict[str, Any]:
    """The plan's SVG graph (the run page's ``runs/_graph.html``), for plans small enough to draw."""
    graph = plan_layout(
        [(s.key, s.depends_on) for s in main], [(s.key, s.undoes) for s in rollback]
    )
    if graph is None:  # a cycle too: the edge list still shows it
        return {"graph": None}
    by_key = {s.key: s for s in (*main, *rollback)}
    nodes = [
        SimpleNamespace(
            node=n,
            row=SimpleNamespace(
                step=by_key[n.key], mark=STATUS_MARK.get(by_key[n.key].status, "?")
            ),
        )
        for n in graph.nodes
    ]
    return {"graph": graph, "graph_nodes": nodes}


# The escalation's new-budget inputs (``runs.views.forms.BudgetFields``), kept on a refusal.
BUDGET_INPUTS = (
    "budget_max_steps",
    "budget_max_tokens",
    "budget_max_cost",
    "budget_max_wall_seconds",
)


def _upstream(item: ReviewItem, main: list[Step]) -> list[Step]:
    """A step gate's inputs: the steps the gated step depends on, with their results."""
    if item.kind != ReviewKind.STEP_GATE or item.step is None:
        return []
    wanted = set(item.step.depends_on or [])
    rows = [s for s in main if s.key in wanted]
    for s in rows:
        s.result_json = json.dumps(s.result, indent=2, ensure_ascii=False, default=str)  # type: ignore[attr-defined]
    return rows
