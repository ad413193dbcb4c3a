"""API endpoints for runs: list and follow them, their plans, steps and events; cancel, resume, retry.

Each endpoint parses, checks the role, calls a selector or service, returns a schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.models import F, QuerySet
from django.http import HttpRequest
from ninja import Path, Query, Router, Status
from pydantic import ValidationError

from reviews.decisions import Binding
from reviews.models import ReviewItem
from reviews.selectors import open_escalation
from runs import selectors
from runs.api.auth import caller, role_auth
from runs.api.errors import ERRORS, ApiError, edited_plan, field_error
from runs.api.inputs import MAX_ID
from runs.api.paging import OFFSET, limit_param, offset_page
from runs.api.schemas.runs import (
    MAX_EVENTS_PAGE,
    AnswerIn,
    CancelIn,
    ConfirmIn,
    DiscardIn,
    ElicitationAnswerIn,
    ElicitationOut,
    EventPageOut,
    ForecastOut,
    GoldenIn,
    GoldenOut,
    PlanOut,
    ResumeIn,
    RetryIn,
    RunFilters,
    RunOut,
    RunPageOut,
    StepOut,
)
from runs.evals.golden import GoldenError, golden_task_save
from runs.lifecycle import cancel, confirmation, elicitation, questions
from runs.lifecycle.errors import RunError
from runs.lifecycle.escalations import review_resolve_escalation
from runs.lifecycle.planning_forecast import run_forecast as forecast_of
from runs.lifecycle.retries import run_retry as retry
from runs.lifecycle.snapshots import snapshot_export
from runs.models import Plan, Run, Step
from runs.permissions import can_view_runs, is_operator, is_reviewer

runs_router = Router(tags=["runs"], auth=role_auth(can_view_runs, "see runs"))

RunId = Path(..., ge=1, le=MAX_ID, description="The run's id.")


def get_run(run_id: int, runs: QuerySet[Run] | None = None) -> Run:
    run = (runs if runs is not None else selectors.run_list_with_progress()).filter(pk=run_id)
    found = run.first()
    if found is None:
        raise ApiError(404, "not_found", f"There is no run {run_id}.")
    return found


# --------------------------------------------------------------------------- tasks


# --------------------------------------------------------------------------- runs
def detail_runs() -> QuerySet[Run]:
    return selectors.run_list_with_progress().select_related("cancel_requested_by")


@runs_router.get("", response={200: RunPageOut, **ERRORS}, summary="List runs")
def run_list(
    request: HttpRequest,
    filters: Query[RunFilters],
    limit: int = limit_param(50),
    offset: int = OFFSET,
) -> dict[str, Any]:
    """Runs newest first, filtered, a page at a time; three queries whatever the page size."""
    runs = selectors.run_search(
        statuses=filters.status,
        submitter=filters.submitter,
        created_after=filters.created_after,
        created_before=filters.created_before,
        text=filters.q,
    )
    items = selectors.id_page(runs, offset, limit)
    selectors.attach_step_outcomes(items)
    return offset_page(runs, limit=limit, offset=offset, items=items)


@runs_router.get("/{run_id}", response={200: RunOut, **ERRORS}, summary="One run")
def run_detail(request: HttpRequest, run_id: int = RunId) -> Run:
    return get_run(run_id, detail_runs())


@runs_router.get(
    "/{run_id}/plans", response={200: list[PlanOut], **ERRORS}, summary="A run's plan versions"
)
def run_plans(request: HttpRequest, run_id: int = RunId) -> QuerySet[Plan]:
    """Every plan version of the run, oldest first, invalid ones with their problems."""
    _exists(run_id)
    return Plan.objects.filter(run_id=run_id).select_related("created_by").order_by("version")


@runs_router.get("/{run_id}/steps", response={200: list[StepOut], **ERRORS}, summary="Steps")
def run_steps(
    request: HttpRequest,
    run_id: int = RunId,
    version: int | None = Query(
        None, ge=1, le=MAX_ID, description="A plan version; the current plan when left out."
    ),
    all_versions: bool = Query(
        False, description="The steps of every plan version, oldest version first."
    ),
) -> list[Step]:
    """The steps of the run's current plan (or of ``version``, or of all): main, then rollback.

    Each step says its plan version and lists its attempts with their own errors; a
    rolled-back main step names the rollback step(s) that undid it (``undone_by``).
    """
    _exists(run_id)
    if all_versions:
        every = Step.objects.filter(run_id=run_id).order_by("plan__version", "phase", "position")
        versions: dict[int, list[Step]] = {}
        for one in every.annotate(plan_version=F("plan__version")):
            versions.setdefault(one.plan_id, []).append(one)
        found = [s for group in versions.values() for s in selectors.undone_by(group)]
    elif version is None:
        found = selectors.undone_by(list(selectors.run_steps(run_id).select_related("plan")))
    else:
        plan_id = Plan.objects.filter(run_id=run_id, version=version).values_list("pk", flat=True)
        if not plan_id:
            raise ApiError(404, "not_found", f"Run {run_id} has no plan version {version}.")
        steps = Step.objects.filter(plan_id=plan_id[0]).order_by("phase", "position")
        found = selectors.undone_by(list(steps.select_related("plan")))
    attempts = selectors.step_attempts(run_id)
    for step in found:
        step.attempt_log = attempts.get(step.pk, [])  # type: ignore[attr-defined]
    return found


@runs_router.get(
    "/{run_id}/events", response={200: EventPageOut, **ERRORS}, summary="Transcript events"
)
def run_events(
    request: HttpRequest,
    run_id: int = RunId,
    after: int = Query(0, ge=0, le=MAX_ID, description="Only events with a larger seq."),
    limit: int = Query(200, ge=1, le=MAX_EVENTS_PAGE),
) -> dict[str, Any]:
    """Transcript events after ``seq`` ``after``, in order; poll with ``next_after`` to follow."""
    status = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
    if status is None:
        raise ApiError(404, "not_found", f"There is no run {run_id}.")
    events = list(selectors.run_events(run_id, after=after)[: limit + 1])
    page = events[:limit]
    return {
        "run_status": status,
        "items": page,
        "next_after": page[-1].seq if page else after,
        "has_more": len(events) > limit,
    }


def _cancel_input(request: HttpRequest) -> CancelIn:
    """The optional JSON body of a cancel; none (or a form post) is a plain cancel.

    Read by hand, not as a ninja body parameter: a session client's form post has
    its stream read by the CSRF check first, and must still cancel.
    """
    if request.content_type != "application/json" or not request.body:
        return CancelIn(rollback=False, reason="")
    try:
        return CancelIn.model_validate_json(request.body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise field_error(where, first["type"], f"{where}: {first['msg']}") from None


@runs_router.post(
    "/{run_id}/cancel",
    response={200: RunOut, **ERRORS},
    summary="Cancel a run (and roll back)",
    auth=role_auth(is_operator, "cancel runs"),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": CancelIn.model_json_schema()}},
        }
    },
)
def run_cancel(request: HttpRequest, run_id: int = RunId) -> Run:
    """Cancel at once when nothing executes the run, else ask its executor to stop (then poll).

    ``{"rollback": true}`` also undoes the steps that succeeded: the run ends
    ``rolled_back`` (a worker runs the rollback, also for a run that waits for a reviewer).
    """
    user = caller(request)
    how = _cancel_input(request)
    try:
        cancel.run_cancel(run_id=run_id, user=user, rollback=how.rollback, reason=how.reason)
    except Run.DoesNotExist:
        raise ApiError(404, "not_found", f"There is no run {run_id}.") from None
    except RunError as exc:
        raise ApiError(409, "run_finished", str(exc)) from exc
    return get_run(run_id, detail_runs())


@runs_router.post(
    "/{run_id}/resume",
    response={200: RunOut, **ERRORS},
    summary="Resume an escalated run: one of the actions its escalation allows now",
    auth=role_auth(is_reviewer, "resume runs"),
)
def run_resume(request: HttpRequest, payload: ResumeIn, run_id: int = RunId) -> Run:
    """Decide the run's open escalation, as its review item would; any worker continues the run.

    Reviewers only. 409 when the run has no open escalation, or when the action
    does not fit it now (the body's ``allowed`` lists those that do); a claimed
    item, the checklist and the reason follow the review queue's rules (403 /
    422); an invalid plan (``edit``, ``write_plan``) or new limits that leave no
    room (``raise_budget``) are a 422, with nothing written.
    """

    user = caller(request)
    _exists(run_id)
    with_plan = payload.action in ("edit", "write_plan")
    if not with_plan and payload.plan is not None:
        raise field_error("plan", "unexpected", "Send a plan only with `edit` or `write_plan`.")
    budgets = payload.budgets()
    if payload.action != "raise_budget" and budgets:
        raise field_error("budgets", "unexpected", "Send budgets only with `raise_budget`.")
    if payload.action == "abort" and not payload.reason.strip():
        raise field_error("reason", "required", "Give a reason for aborting the run.")
    if payload.action == "mark_done" and not payload.reason.strip():
        raise field_error("reason", "required", "Say what was done by hand to undo the step.")
    item = open_escalation(run_id)
    if item is None:
        raise ApiError(
            409, "not_escalated", f"Run {run_id} has no open escalation: nothing to resume."
        )
    review_resolve_escalation(
        item_id=item.pk,
        user=user,
        action=payload.action,
        reason=payload.reason,
        checklist=payload.checklist,
        document=edited_plan(payload.plan) if with_plan else None,
        budgets=budgets,
        binding=Binding(plan_version=payload.plan_version, plan_hash=payload.plan_hash or ""),
    )
    return get_run(run_id, detail_runs())


@runs_router.post(
    "/{run_id}/retry",
    response={201: RunOut, **ERRORS},
    summary="Retry a failed run from a failed step (a new run of the same task)",
    auth=role_auth(is_operator, "retry runs"),
)
def run_retry(request: HttpRequest, payload: RetryIn, run_id: int = RunId) -> Status[Run]:
    """A new run of the task from ``step``; steps that still stand are carried over (409 if not retryable)."""

    user = caller(request)
    try:
        new = retry(run_id=run_id, step=payload.step, user=user)
    except Run.DoesNotExist:
        raise ApiError(404, "not_found", f"There is no run {run_id}.") from None
    except RunError as exc:
        raise ApiError(409, "not_retryable", str(exc)) from exc
    return Status(201, get_run(new.pk, detail_runs()))


@runs_router.get(
    "/{run_id}/forecast",
    response={200: ForecastOut, **ERRORS},
    summary="Expected duration and cost of the run's plan, and the actual once it ran",
)
def run_forecast(request: HttpRequest, run_id: int = RunId) -> dict[str, Any]:
    """As of the run's start (history before it), so the figure after the run is the one before."""
    run = Run.objects.select_related("current_plan").filter(pk=run_id).first()
    if run is None:
        raise ApiError(404, "not_found", f"There is no run {run_id}.")
    found = forecast_of(run)
    if found is None:
        raise ApiError(409, "no_plan", f"Run {run_id} has no plan yet.")
    return found.as_dict()


@runs_router.post(
    "/{run_id}/answer",
    response={200: RunOut, **ERRORS},
    summary="Answer the planner's clarifying question (the planner continues with it)",
)
def run_answer(request: HttpRequest, payload: AnswerIn, run_id: int = RunId) -> Run:
    """For the task's submitter or a reviewer (403 otherwise); 409 when no question waits."""
    try:
        questions.run_answer(run_id=run_id, user=caller(request), answer=payload.answer)
    except Run.DoesNotExist:
        raise ApiError(404, "not_found", f"There is no run {run_id}.") from None
    except questions.NotYours as exc:
        raise ApiError(403, "forbidden", str(exc)) from exc
    except RunError as exc:
        raise ApiError(409, "no_question", str(exc)) from exc
    return get_run(run_id, detail_runs())


@runs_router.post(
    "/{run_id}/confirm",
    response={200: RunOut, **ERRORS},
    summary="Confirm the plan waiting for its submitter (as shown, or edited)",
)
def run_confirm(request: HttpRequest, payload: ConfirmIn, run_id: int = RunId) -> Run:
    """For the task's submitter or an operator (403 otherwise).

    409 when no plan waits or ``plan_version`` names another version; 422 for an edited
    plan with problems (each with its path). The run then executes, or waits for a
    reviewer when the approval policy holds the plan.
    """
    document = edited_plan(payload.plan) if payload.plan is not None else None
    with _confirmation_refusals(run_id):
        confirmation.run_confirm(
            run_id=run_id,
            user=caller(request),
            plan_version=payload.plan_version,
            document=document,
            reason=payload.reason,
        )
    return get_run(run_id, detail_runs())


@runs_router.post(
    "/{run_id}/discard",
    response={200: RunOut, **ERRORS},
    summary="Discard the plan waiting for its submitter (the run ends cancelled)",
)
def run_discard(request: HttpRequest, payload: DiscardIn, run_id: int = RunId) -> Run:
    """For the task's submitter or an operator (403 otherwise); 409 when no plan waits."""
    with _confirmation_refusals(run_id):
        confirmation.run_discard(
            run_id=run_id,
            user=caller(request),
            plan_version=payload.plan_version,
            reason=payload.reason,
        )
    return get_run(run_id, detail_runs())


@contextmanager
def _confirmation_refusals(run_id: int) -> Iterator[None]:
    """A confirm's or discard's refusals as API errors (404, 403, 409)."""
    try:
        yield
    except Run.DoesNotExist:
        raise ApiError(404, "not_found", f"There is no run {run_id}.") from None
    except confirmation.NotYours as exc:
        raise ApiError(403, "forbidden", str(exc)) from exc
    except confirmation.StaleConfirmation as exc:
        raise ApiError(409, "stale_plan", str(exc)) from exc
    except RunError as exc:
        raise ApiError(409, "nothing_to_confirm", str(exc)) from exc


@runs_router.post(
    "/{run_id}/elicitations/{item_id}",
    response={200: ElicitationOut, **ERRORS},
    summary="Answer a tool's question asked during a step's call (the call continues)",
)
def run_elicitation_answer(
    request: HttpRequest,
    payload: ElicitationAnswerIn,
    run_id: int = RunId,
    item_id: int = Path(..., ge=1, le=MAX_ID, description="The question's review item id."),
) -> dict[str, Any]:
    """For the task's submitter or a reviewer (403 otherwise); 422 when the content breaks the
    requested schema; 409 when the question was already answered or closed."""
    try:
        item = elicitation.elicitation_answer(
            run_id=run_id,
            item_id=item_id,
            user=caller(request),
            action=payload.action,
            content=payload.content,
        )
    except Run.DoesNotExist:
        raise ApiError(404, "not_found", f"There is no run {run_id}.") from None
    except ReviewItem.DoesNotExist:
        raise ApiError(404, "not_found", f"Run {run_id} has no question {item_id}.") from None
    except elicitation.NotYours as exc:
        raise ApiError(403, "forbidden", str(exc)) from exc
    except elicitation.BadAnswer as exc:
        raise field_error("content", "invalid", str(exc)) from exc
    except RunError as exc:
        raise ApiError(409, "closed", str(exc)) from exc
    return {"item_id": item.pk, "status": item.status, "action": item.decision}


@runs_router.get(
    "/{run_id}/export",
    response={200: dict[str, Any], **ERRORS},
    summary="Export a run as one snapshot document",
)
def run_export(request: HttpRequest, run_id: int = RunId) -> dict[str, Any]:
    """Everything about the run, redacted, in the format of docs/run-snapshot.schema.json."""
    try:
        return snapshot_export(run_id=run_id)
    except Run.DoesNotExist:
        raise ApiError(404, "not_found", f"There is no run {run_id}.") from None


@runs_router.post(
    "/{run_id}/golden",
    response={201: GoldenOut, **ERRORS},
    summary="Save a finished run as a golden task (with its cassette when it was recorded)",
    auth=role_auth(is_operator, "save golden tasks"),
)
def run_save_golden(
    request: HttpRequest, payload: GoldenIn, run_id: int = RunId
) -> Status[dict[str, Any]]:
    """Its task, plan and outcome as a new task of the suite; 409 when the run cannot be one."""
    try:
        saved = golden_task_save(run_id=run_id, suite_name=payload.suite)
    except Run.DoesNotExist:
        raise ApiError(404, "not_found", f"There is no run {run_id}.") from None
    except GoldenError as exc:
        raise ApiError(409, "not_golden", str(exc)) from exc
    name = saved.suite.name
    return Status(
        201,
        {
            "suite": name,
            "task": saved.task,
            "cassette": saved.cassette is not None,
            "command": f"manage.py evaluate {name}" + (" --replay" if saved.cassette else ""),
        },
    )


def _exists(run_id: int) -> None:
    if not Run.objects.filter(pk=run_id).exists():
        raise ApiError(404, "not_found", f"There is no run {run_id}.")
