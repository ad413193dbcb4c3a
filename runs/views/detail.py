"""One run, live: facts, plan graph, step table, progress, plan versions, transcript; and cancel.

The page renders everything once; ``static/runs/run.js`` then follows the run's
websocket and updates the page in place. ``run_live`` re-renders the live part
(graph, steps, progress) when a new plan version brings new steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from reviews.models import ReviewItem, ReviewKind, ReviewStatus
from runs import selectors
from runs.events import event_summary
from runs.execution.budgets import budgets_for, run_usage
from runs.graph import GraphNode, plan_layout, too_big_to_draw
from runs.lifecycle import cancel, retries
from runs.lifecycle.confirmation import may_confirm, open_confirmation
from runs.lifecycle.elicitation import form_fields
from runs.lifecycle.errors import RunError
from runs.lifecycle.questions import open_question
from runs.lifecycle.retention import run_tombstones
from runs.lifecycle.retries import retryable_steps
from runs.models import Run, RunStatus, Step, Tombstone
from runs.permissions import can_view_runs, is_operator, role_required
from runs.planning.accounting import LlmTotals, llm_totals_of
from runs.planning.words import plan_text
from runs.redaction import redaction_summary
from runs.selectors import STATUS_MARK, run_archive
from runs.statemachine import RUN_TERMINAL, STEP_FINISHED
from runs.views.listing import HEARTBEAT_SECONDS

# The detail page renders at most this many transcript events (the newest ones; the API and
# the websocket replay serve them all): the rows are cheap to build now (run_page filters), but
# every event is still a read, a summary and page weight the browser has to lay out.
TRANSCRIPT_LIMIT = 300


@dataclass(frozen=True)
class StepRow:
    step: Step
    mark: str
    duration: timedelta | None
    params_json: str
    result_json: str


@dataclass(frozen=True)
class NodeView:
    node: GraphNode
    row: StepRow


@dataclass(frozen=True)
class EventRow:
    seq: int
    at: Any
    role: str
    kind: str
    summary: str


def event_rows(events: list[Any]) -> list[EventRow]:
    """Transcript events as the page's rows, each summarised by its event class, as the frames are."""
    return [
        EventRow(e.seq, e.created_at, e.role, e.kind, event_summary(e.kind, e.payload))
        for e in events
    ]


def _live_context(run: Run) -> dict[str, Any]:
    """Graph, steps, progress, plan versions, reviews and model-call totals of ``run``.

    ``run`` comes from ``selectors.run_detail``: its ``last_seq`` was read first, so
    what is read here is at least that new (the live client applies later events).
    Four queries, whatever the number of steps: steps, plans, reviews, model calls.
    """
    plan_steps = Step.objects.filter(plan_id=run.current_plan_id) if run.current_plan_id else None
    steps = (
        list(
            selectors.with_lock_waits(
                plan_steps.select_related("tool").order_by("phase", "position")
            )
        )
        if plan_steps is not None
        else []
    )
    steps = selectors.with_agent_calls(steps)  # an agent step's inner calls, when there is one
    rows = [_step_row(s) for s in selectors.undone_by(steps)]
    main = [r for r in rows if r.step.phase == Step.Phase.MAIN]
    rollback = [r for r in rows if r.step.phase == Step.Phase.ROLLBACK]
    graph = plan_layout(
        [(r.step.key, r.step.depends_on) for r in main],
        [(r.step.key, r.step.undoes) for r in rollback],
    )
    nodes = None
    if graph is not None:
        by_key = {r.step.key: r for r in rows}
        nodes = [NodeView(n, by_key[n.key]) for n in graph.nodes]
    outcomes = selectors.outcome_counts([r.step.status for r in main])
    finished = sum(n for s, n in outcomes.items() if s in STEP_FINISHED)
    calls = selectors.run_llm_calls(run.pk)
    totals = llm_totals_of(calls)
    return {
        "live_seq": run.last_seq,  # type: ignore[attr-defined]
        "main_steps": main,
        "rollback_steps": rollback,
        "finished_steps": finished,
        "outcomes": outcomes,
        "graph": graph,
        "graph_nodes": nodes,
        "graph_omitted": too_big_to_draw(len(main)),
        "plan_version": run.current_plan.version if run.current_plan else None,
        "plan_goal": run.current_plan.goal if run.current_plan else "",
        "plans": selectors.run_plan_versions(run.pk),
        "open_reviews": _open_reviews(run.pk),
        "llm_calls": calls,
        "llm_totals": totals,
        "steps": steps,
    }


def _open_reviews(run_id: int) -> list[ReviewItem]:
    """The run's review items still waiting for a reviewer (the page links reviewers to them)."""

    return list(
        ReviewItem.objects.filter(run_id=run_id, status=ReviewStatus.OPEN)
        .select_related("assignee")
        .order_by("id")
    )


def _get_run(run_id: int) -> Run:
    try:
        return selectors.run_detail(run_id)
    except Run.DoesNotExist:
        raise Http404("No such run.") from None


@require_GET
@role_required(can_view_runs)
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """One run: its graph, steps, rollback steps, plan versions and transcript; live over a websocket."""
    try:
        run = selectors.run_detail(run_id)
    except Run.DoesNotExist:
        return _purged(request, run_id)
    tombstones = run_tombstones(run_id) if run.has_tombstones else {}  # type: ignore[attr-defined]
    live = _page_live_context(run, request.user)
    events, waits = selectors.transcript_tail(
        run.pk, last_seq=live["live_seq"], limit=TRANSCRIPT_LIMIT
    )
    last_seq = events[-1].seq if events else 0
    return render(
        request,
        "runs/run_detail.html",
        {
            **live,
            "waits_json": _waits_json(waits),
            "tombstones": tombstones,
            "events": event_rows(events),
            # Seqs are gap-free from 1, so the first one shown says how many are hidden.
            "events_hidden": events[0].seq - 1 if events else 0,
            "last_seq": last_seq,
            "live_config": {
                "run": run.pk,
                "lastSeq": last_seq,
                "closed": live["is_closed"],
                "runTerminal": sorted(RUN_TERMINAL),
                "stepFinished": sorted(STEP_FINISHED),
                "outcomeOrder": list(selectors.OUTCOME_ORDER),
                "marks": {str(k): v for k, v in STATUS_MARK.items()},
                "heartbeatSeconds": HEARTBEAT_SECONDS,
            },
        },
    )


def _purged(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run retention removed: when and by which rule (410); any other unknown run is a 404."""
    tombstone = run_tombstones(run_id).get(Tombstone.What.RUN)
    if tombstone is None:
        raise Http404("No such run.")
    return render(
        request, "runs/run_purged.html", {"run_id": run_id, "tombstone": tombstone}, status=410
    )


def _page_live_context(run: Run, user: Any) -> dict[str, Any]:
    """Everything the live part of the page shows: facts, forms, graph, timeline, steps, plans.

    The page re-renders it (``run_live``) whenever the run's status changes or a review
    item opens or closes, so finish times, duration, budgets, the retry form and review
    links are current without a reload.
    """
    live = _live_context(run)
    archive = run_archive(run)
    tree = _tree_context(run)
    return {
        "run": run,
        **live,
        "is_finished": run.status in RUN_TERMINAL,
        # Closed: final, and no reviewer can reopen it (no open review item). An escalated
        # run waits for a reviewer, so the page keeps listening until the item is decided.
        "is_closed": run.status in RUN_TERMINAL and not live["open_reviews"],
        # A run waiting for a reviewer's escalation can still be cancelled and rolled back;
        # an archived one (imported from a snapshot) is read-only.
        "may_roll_back": archive is None
        and (run.status not in RUN_TERMINAL or run.status == RunStatus.ESCALATED),
        "archive": archive,
        "question": open_question(run.pk) if run.status == RunStatus.AWAITING_INPUT else None,
        **_confirmation_context(run, user),
        "tool_questions": _tool_questions(run, live["open_reviews"]),
        "redactions": redaction_summary(run.redaction),
        "retry_steps": sorted(retryable_steps(run, live["steps"])),
        **tree,
        **_budget_context(run, live["llm_totals"], [c["id"] for c in tree["children"]]),
    }


def _tree_context(run: Run) -> dict[str, Any]:
    """Where the run sits among subplans: its parent (and step), its child runs and their status."""
    children = selectors.run_children(run.pk) if getattr(run, "has_children", True) else []
    return {
        "parent_step": run.parent_step.key if run.parent_step_id else "",  # type: ignore[union-attr]
        "children": children,
        "children_going": any(c["status"] not in RUN_TERMINAL for c in children),
    }


@require_GET
@role_required(can_view_runs)
def run_tree(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run's place among subplans alone: polled while a child run is going."""
    run = _get_run(run_id)
    return render(request, "runs/_run_tree.html", {"run": run, **_tree_context(run)})


def _confirmation_context(run: Run, user: Any) -> dict[str, Any]:
    """The plan waiting for its submitter's confirmation, with the text its editor starts from."""
    item = open_confirmation(run.pk) if run.status == RunStatus.AWAITING_APPROVAL else None
    if item is None or item.plan is None:
        return {"confirmation": None}
    document = item.plan.document
    return {
        "confirmation": item,
        "may_confirm": may_confirm(user, run),
        "confirmation_text": plan_text(document) if isinstance(document, dict) else "",
    }


def _tool_questions(run: Run, open_reviews: list[ReviewItem]) -> list[dict[str, Any]]:
    """The open questions of the run's tools (MCP elicitation), each with its form.

    They are among the run's open items the page reads anyway (``_open_reviews``).
    """
    if run.status in RUN_TERMINAL:
        return []
    items = [i for i in open_reviews if i.kind == ReviewKind.ELICITATION]
    return [
        {
            "item": item,
            "fields": form_fields(item),
            "schema": json.dumps(item.context.get("schema") or {}, indent=2, ensure_ascii=False),
        }
        for item in items
    ]


def _waits_json(waits: list[selectors.StepWait]) -> list[dict[str, Any]]:
    """The timeline's lock and gate waits, for ``json_script``."""
    return [
        {
            "step": w.step,
            "kind": w.kind,
            "start": w.start.isoformat(),
            "end": w.end.isoformat() if w.end else None,
            "label": w.label,
        }
        for w in waits
    ]


def _budget_context(run: Run, totals: LlmTotals, children: list[int]) -> dict[str, Any]:
    """The run's budgets and what it used, only when a budget applies (then one query)."""

    budgets = budgets_for(run.task)
    if not budgets:
        return {"budgets": None}
    usage = run_usage(run.pk, run.started_at, totals=totals, children=children)
    return {"budgets": budgets, "usage": usage}


@require_GET
@role_required(can_view_runs)
def run_live(request: HttpRequest, run_id: int) -> HttpResponse:
    """The live part of the detail page alone (htmx swaps it in on a new plan, status or review)."""
    run = _get_run(run_id)
    waits = _waits_json(selectors.step_waits(run.pk))
    return render(
        request,
        "runs/_run_live.html",
        {**_page_live_context(run, request.user), "waits_json": waits},
    )


def _step_row(step: Step) -> StepRow:
    duration = step.finished_at - step.started_at if step.started_at and step.finished_at else None
    return StepRow(
        step=step,
        mark=STATUS_MARK.get(step.status, "?"),
        duration=duration,
        params_json=_pretty(step.params),
        result_json=_pretty(step.result) if step.result is not None else "",
    )


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


# --------------------------------------------------------------------------- retry
@require_POST
@role_required(is_operator)
def run_retry(request: HttpRequest, run_id: int) -> HttpResponse:
    """A new run of this task from a failed step (see ``runs.lifecycle.retries``); refusals are messages."""
    try:
        new = retries.run_retry(
            run_id=run_id,
            step=request.POST.get("step", ""),
            user=request.user,  # type: ignore[arg-type]
        )
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    except RunError as exc:
        messages.error(request, str(exc))
        return redirect("runs:detail", run_id=run_id)
    messages.success(request, f"Run {new.pk} retries run {run_id} ({new.status}).")
    return redirect("runs:detail", run_id=new.pk)


# --------------------------------------------------------------------------- cancel
@require_POST
@role_required(is_operator)
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    """Cancel a run, or cancel and roll it back; a run that already ended gets a message."""
    rollback = request.POST.get("rollback") == "1"
    try:
        run = cancel.run_cancel(
            run_id=run_id,
            user=request.user,  # type: ignore[arg-type]
            rollback=rollback,
            reason=request.POST.get("reason", "")[:2000],
        )
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    except RunError as exc:
        messages.error(request, str(exc))
    else:
        if run.status == RunStatus.CANCELLED:
            messages.success(request, f"Run {run_id} cancelled.")
        elif run.status == RunStatus.ROLLING_BACK:
            messages.info(request, f"Run {run_id}: cancelled; a worker rolls it back.")
        elif rollback:
            messages.info(
                request, f"Run {run_id}: cancel requested; running steps are stopped, then undone."
            )
        else:
            messages.info(request, f"Run {run_id}: cancel requested; running steps are stopped.")
    return redirect("runs:detail", run_id=run_id)
