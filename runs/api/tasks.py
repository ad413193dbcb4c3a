"""API endpoints for tasks: submit a hand-written plan, or a task for a planner."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Status

from runs.api.auth import caller, role_auth
from runs.api.errors import ERRORS, ApiError, field_error
from runs.api.inputs import storable_problem
from runs.api.runs import detail_runs, get_run
from runs.api.schemas.runs import (
    RunOut,
)
from runs.api.schemas.tasks import TaskIn
from runs.lifecycle.intake import TaskTitleMissing, planner_task_check
from runs.lifecycle.planning import run_submit_task
from runs.lifecycle.retention import RetentionError
from runs.lifecycle.submit import REPLANNER_FIELDS, run_submit_plan
from runs.models import Run
from runs.permissions import is_operator
from runs.planning.availability import PlannerUnavailable, planner_require
from runs.planning.options import PlannerOptionsError
from runs.planning.schema import PlanSyntaxError, goal_title, parse_plan_text
from runs.planning.validation import validate_with_registry

tasks_router = Router(tags=["tasks"], auth=role_auth(is_operator, "submit tasks"))


def plan_field(path: str) -> str:
    return "plan" if not path else f"plan{path}" if path.startswith("[") else f"plan.{path}"


def _task_for_planner(payload: TaskIn, options: dict[str, Any], user: Any) -> Status[Run]:
    """A task without a plan: queued for the planner its options name (422 on a bad option)."""

    if not options:
        raise ApiError(
            422,
            "invalid_input",
            "Give a plan, or planner options (at least planner) to have one made.",
            fields=[{"field": "plan", "code": "missing", "message": "a plan or a planner"}],
        )
    try:
        title, _ = planner_task_check(title=payload.title, **options)
    except TaskTitleMissing as exc:
        raise ApiError(
            422,
            "invalid_input",
            str(exc),
            fields=[{"field": "title", "code": "required", "message": "Give a title."}],
        ) from None
    except PlannerOptionsError as exc:
        raise _options_error(exc) from exc
    except PlannerUnavailable as exc:
        raise _unavailable(exc) from None
    try:
        run = run_submit_task(
            title=title,
            description=payload.description,
            submitted_by=user,
            max_parallel=payload.max_parallel,
            budgets=payload.budgets(),
            retain_days=payload.retain_days,
            confirm_plan=payload.confirm_plan,
            **options,
        )
    except PlannerOptionsError as exc:
        raise _options_error(exc) from exc
    except RetentionError as exc:
        raise field_error("retain_days", "out_of_bounds", str(exc)) from exc
    return Status(201, get_run(run.pk, detail_runs()))


@tasks_router.post(
    "", response={201: RunOut, **ERRORS}, summary="Submit a task with a plan, or for a planner"
)
def task_create(request: HttpRequest, payload: TaskIn) -> Status[Run]:
    """Create a task and its run from a hand-written plan; a plan with problems creates nothing.

    An invalid plan is answered 422 with every problem and its path, like the
    dashboard's form; a valid one is queued to execute at once. With a plan,
    ``planner`` (and ``model``, ``temperature``, ``max_tokens``, ``max_replans``)
    names the planner that proposes a new version when a step fails.
    """
    user = caller(request)
    options = payload.planner_options()
    if payload.plan is None:
        return _task_for_planner(payload, options, user)
    _only_replanner_options(options)
    _plan_extras(payload, options)
    document: Any = payload.plan
    if isinstance(document, str):
        try:
            document = parse_plan_text(document)
        except PlanSyntaxError as exc:
            raise ApiError(
                422,
                "plan_syntax",
                f"The plan is not valid YAML or JSON: {exc}",
                fields=[{"field": "plan", "code": "syntax", "message": str(exc)}],
            ) from exc
        problem = storable_problem(document)
        if problem:
            raise ApiError(
                422,
                "plan_syntax",
                f"The plan holds a value that cannot be stored: {problem}",
                fields=[{"field": "plan", "code": "syntax", "message": problem}],
            )
    title = payload.title.strip()
    if not title:
        title = goal_title(document)
    validated = validate_with_registry(document)
    problems = [
        {"field": plan_field(p.path), "code": p.code, "message": p.message}
        for p in validated.problems
    ]
    if not title:
        problems.insert(
            0,
            {
                "field": "title",
                "code": "required",
                "message": "Give a title (the plan has no goal).",
            },
        )
    if problems or not validated.is_valid:
        count = len(problems)
        raise ApiError(
            422,
            "invalid_plan",
            f"The task has {count} problem{'s' * (count != 1)}; nothing was created.",
            fields=problems,
        )
    try:
        run = run_submit_plan(
            title=title,
            description=payload.description,
            document=document,
            submitted_by=user,
            max_parallel=payload.max_parallel,
            validated=validated,
            budgets=payload.budgets(),
            replanner=options,
            retain_days=payload.retain_days,
        )
    except PlannerOptionsError as exc:
        raise _options_error(exc) from exc
    except RetentionError as exc:
        raise field_error("retain_days", "out_of_bounds", str(exc)) from exc
    return Status(201, get_run(run.pk, detail_runs()))


def _only_replanner_options(options: dict[str, Any]) -> None:
    """A plan takes only the options of the planner that replans it: 422 naming the others."""
    wrong = sorted(set(options) - set(REPLANNER_FIELDS))
    if wrong:
        raise ApiError(
            422,
            "invalid_input",
            "A hand-written plan takes only the options of the planner that replans it ("
            + ", ".join(REPLANNER_FIELDS)
            + ").",
            fields=[
                {"field": name, "code": "not_with_plan", "message": "not used with a plan"}
                for name in wrong
            ],
        )


def _plan_extras(payload: TaskIn, options: dict[str, Any]) -> None:
    """422 for what a hand-written plan cannot take: a confirmation choice, an unusable replanner."""
    if payload.confirm_plan is not None:
        raise field_error(
            "confirm_plan",
            "not_with_plan",
            "A hand-written plan runs as written: confirmation is for a planner's plan.",
        )
    if options.get("planner"):
        try:
            planner_require(options["planner"])
        except PlannerUnavailable as exc:
            raise _unavailable(exc) from None


def _unavailable(exc: PlannerUnavailable) -> ApiError:
    """422 naming what to set when the planner cannot plan on this deployment (no key, no URL)."""
    return ApiError(
        422,
        "planner_unavailable",
        str(exc),
        fields=[{"field": "planner", "code": "unavailable", "message": exc.missing}],
    )


def _options_error(exc: PlannerOptionsError) -> ApiError:
    return ApiError(
        422,
        "invalid_planner_options",
        str(exc),
        fields=[{"field": exc.field or "planner", "code": "invalid", "message": str(exc)}],
    )
