"""The tools plannerweb serves over MCP: each checks the caller's role, then calls one service.

The caller is the user of the request's API token (``endpoint.py`` puts it in
the ASGI scope). ORM work runs in a database thread; a refusal or a bad input is
a tool error (``isError``) with a message saying why, never a half-written state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from runs import selectors
from runs.api.schemas.runs import RunOut, StepOut
from runs.dbthreads import in_db_thread
from runs.lifecycle.intake import TaskTitleMissing, planner_task_check
from runs.lifecycle.planning import run_submit_task
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, Tool
from runs.permissions import can_view_runs, is_operator
from runs.planning.availability import PlannerUnavailable
from runs.planning.options import PlannerOptionsError
from runs.planning.schema import PlanSyntaxError, goal_title, parse_plan_text
from runs.planning.validation import validate_with_registry
from runs.statemachine import RUN_TERMINAL

USER_KEY = "plannerweb.user"
WAIT_LIMIT_SECONDS = 300.0
POLL_SECONDS = 0.25
_READS = ToolAnnotations(read_only_hint=True, idempotent_hint=True)
_WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False)


def _caller(ctx: Context, check: Callable[[Any], bool], what: str) -> User:
    request = ctx.request_context.request
    user = getattr(request, "scope", {}).get(USER_KEY)
    if user is None or not check(user):
        raise ToolError(f"Your role does not allow you to {what}.")
    return user


def _document(plan: dict[str, Any] | str) -> Any:
    if isinstance(plan, str):
        try:
            return parse_plan_text(plan)
        except PlanSyntaxError as exc:
            raise ToolError(f"The plan is not valid YAML or JSON: {exc}") from exc
    return plan


def _problems(document: Any) -> tuple[Any, list[dict[str, str]]]:
    """The plan validated against the registry, and its problems (none: it is valid)."""
    validated = validate_with_registry(document)
    found = [{"path": p.path, "code": p.code, "message": p.message} for p in validated.problems]
    if not found and not validated.is_valid:
        found = [{"path": "", "code": "invalid", "message": "the plan is not valid"}]
    return validated, found


def _run_out(run_id: int) -> dict[str, Any]:
    run = (
        selectors.run_list_with_progress()
        .select_related("cancel_requested_by")
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        raise ToolError(f"There is no run {run_id}.")
    steps = selectors.undone_by(list(selectors.run_steps(run_id)))
    return {
        "run": RunOut.from_orm(run).model_dump(mode="json"),
        "steps": [StepOut.from_orm(s).model_dump(mode="json") for s in steps],
    }


async def list_tools(ctx: Context) -> list[dict[str, Any]]:
    """The enabled tools a plan's steps may use: name, description, parameters schema, flags."""
    _caller(ctx, can_view_runs, "see the tool registry")

    def read() -> list[dict[str, Any]]:
        return [
            {
                "name": t.name,
                "description": t.description,
                "parameters_schema": t.parameters_schema,
                "sensitive": t.sensitive,
                "read_only": t.read_only,
                "idempotent": t.idempotent,
            }
            for t in Tool.objects.filter(enabled=True).order_by("name")
        ]

    return await in_db_thread(read)


async def validate_plan(plan: dict[str, Any] | str, ctx: Context) -> dict[str, Any]:
    """Check a plan (a JSON object, or YAML/JSON text) against the schema and the registry."""
    _caller(ctx, can_view_runs, "validate plans")
    document = _document(plan)
    _, problems = await in_db_thread(lambda: _problems(document))
    return {"valid": not problems, "problems": problems}


async def submit_plan(
    plan: dict[str, Any] | str, ctx: Context, title: str = "", description: str = ""
) -> dict[str, Any]:
    """Submit a plan: validated, queued for approval when the policy says so, then executed."""
    user = _caller(ctx, is_operator, "submit tasks")
    document = _document(plan)

    def submit() -> dict[str, Any]:
        validated, problems = _problems(document)
        name = title.strip() or goal_title(document)
        if problems or not name:
            raise ToolError(
                "The plan has problems; nothing was created: "
                + "; ".join(f"{p['path'] or 'plan'}: {p['message']}" for p in problems)
                + ("" if name else "give a title (the plan has no goal)")
            )
        run = run_submit_plan(
            title=name[:200],
            description=description,
            document=document,
            submitted_by=user,
            validated=validated,
        )
        return _run_out(run.pk)

    return await in_db_thread(submit)


async def plan_task(
    title: str, ctx: Context, description: str = "", planner: str = "", model: str = ""
) -> dict[str, Any]:
    """Hand a task to one of plannerweb's planners; the plan it makes is reviewed and executed.

    Refused as the API refuses it, before anything is created (no run that escalates later).
    """
    user = _caller(ctx, is_operator, "submit tasks")
    try:
        name, _ = planner_task_check(title=title, planner=planner, model=model)
    except (TaskTitleMissing, PlannerOptionsError, PlannerUnavailable) as exc:
        raise ToolError(str(exc)) from exc

    def submit() -> dict[str, Any]:
        run = run_submit_task(
            title=name[:200],
            description=description,
            submitted_by=user,
            planner=planner,
            model=model,
        )
        return _run_out(run.pk)

    return await in_db_thread(submit)


async def run_status(run_id: int, ctx: Context) -> dict[str, Any]:
    """A run's status and progress, and its current plan's steps with their results."""
    _caller(ctx, can_view_runs, "see runs")
    return await in_db_thread(lambda: _run_out(run_id))


async def wait_for_run(run_id: int, ctx: Context, timeout_seconds: float = 60) -> dict[str, Any]:
    """Wait (at most ``timeout_seconds``, up to 300) for the run to finish; then its status."""
    _caller(ctx, can_view_runs, "see runs")
    deadline = asyncio.get_running_loop().time() + min(max(timeout_seconds, 0), WAIT_LIMIT_SECONDS)
    while True:
        status = await in_db_thread(
            lambda: Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
        )
        if status is None:
            raise ToolError(f"There is no run {run_id}.")
        if status in RUN_TERMINAL or asyncio.get_running_loop().time() >= deadline:
            return {
                "finished": status in RUN_TERMINAL,
                **await in_db_thread(lambda: _run_out(run_id)),
            }
        await asyncio.sleep(POLL_SECONDS)


def register(server: MCPServer) -> None:
    """Add plannerweb's tools to ``server``."""
    server.add_tool(list_tools, annotations=_READS)
    server.add_tool(validate_plan, annotations=_READS)
    server.add_tool(submit_plan, annotations=_WRITES)
    server.add_tool(plan_task, annotations=_WRITES)
    server.add_tool(run_status, annotations=_READS)
    server.add_tool(wait_for_run, annotations=_READS)
