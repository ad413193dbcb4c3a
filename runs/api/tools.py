"""API endpoints for the tool registry: everyone with a role reads, staff write.

YAML import/export lives at ``/tools.yaml`` (a dot can never be in a tool
name, so it cannot collide with ``/tools/{name}``).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Path, Router, Status

from runs.api.auth import caller, role_auth
from runs.api.errors import ERRORS, ApiError
from runs.api.schemas.tools import (
    QueueOut,
    ReuseOut,
    ToolIn,
    ToolOut,
    ToolPatchIn,
    ToolsImportIn,
    ToolsImportOut,
)
from runs.models import Tool
from runs.overview import reuse_savings, reuse_totals
from runs.permissions import can_view_runs, is_admin
from runs.pools import queues_overview
from runs.tools import services as registry
from runs.tools.services import ToolRejected, tool_update
from runs.tools.yaml_io import ToolsYamlError, tools_import, tools_to_yaml

tools_router = Router(tags=["tools"], auth=role_auth(can_view_runs, "see the tool registry"))
STAFF = role_auth(is_admin, "edit the tool registry")

ToolName = Path(..., max_length=100, pattern=r"^[-a-zA-Z0-9_]+$", description="The tool's name.")
_OUT_FIELDS = [f for f in ToolOut.model_fields if f != "config"]


def _out(tool: Tool, *, staff: bool) -> dict[str, Any]:
    """A tool as the caller may see it: its config (URLs, headers) only for staff."""
    data = {name: getattr(tool, name) for name in _OUT_FIELDS}
    data["config"] = tool.config if staff else None
    return data


def _tool(name: str) -> Tool:
    tool = Tool.objects.filter(name=name).first()
    if tool is None:
        raise ApiError(404, "not_found", f"There is no tool {name!r}.")
    return tool


def _rejected(exc: ToolRejected) -> ApiError:
    count = len(exc.problems)
    return ApiError(
        409 if any(code == "name" and "exists" in m for code, m in exc.problems) else 422,
        "invalid_tool",
        f"The tool has {count} problem{'s' * (count != 1)}; nothing was saved.",
        fields=[{"field": f, "code": "invalid", "message": m} for f, m in exc.problems],
    )


@tools_router.get("/tools", response={200: list[ToolOut], **ERRORS}, summary="List tools")
def tool_list(request: HttpRequest) -> list[dict[str, Any]]:
    user = caller(request)
    return [_out(t, staff=is_admin(user)) for t in Tool.objects.order_by("name")]


@tools_router.get(
    "/queues", response={200: list[QueueOut], **ERRORS}, summary="Executor pools (tool queues)"
)
def queue_list(request: HttpRequest) -> list[dict[str, Any]]:
    """Each queue a tool names or a step waits on: steps waiting and running, live workers."""
    return [
        {
            "name": q.name,
            "pending": q.pending,
            "running": q.running,
            "workers": q.workers,
            "tools": q.tools,
            "unserved": q.unserved,
        }
        for q in queues_overview()
    ]


@tools_router.get(
    "/reuse", response={200: ReuseOut, **ERRORS}, summary="Plan reuse: model work saved"
)
def reuse_report(request: HttpRequest) -> dict[str, Any]:
    """Runs planned by reusing an approved plan, with the model calls and tokens each saved."""
    totals = reuse_totals()
    return {
        "runs": totals.runs,
        "saved_calls": totals.saved_calls,
        "saved_tokens": totals.saved_tokens,
        "reuses": [
            {
                "run_id": s.run_id,
                "reused_from": s.source,
                "saved_calls": s.saved_calls,
                "saved_tokens": s.saved_tokens,
            }
            for s in reuse_savings()
        ],
    }


@tools_router.get("/tools/{name}", response={200: ToolOut, **ERRORS}, summary="One tool")
def tool_detail(request: HttpRequest, name: str = ToolName) -> dict[str, Any]:
    user = caller(request)
    return _out(_tool(name), staff=is_admin(user))


@tools_router.post("/tools", response={201: ToolOut, **ERRORS}, summary="Add a tool", auth=STAFF)
def tool_create(request: HttpRequest, payload: ToolIn) -> Status[dict[str, Any]]:
    user = caller(request)
    try:
        tool = registry.tool_create(actor=user, **payload.model_dump())
    except ToolRejected as exc:
        raise _rejected(exc) from exc
    return Status(201, _out(tool, staff=True))


@tools_router.put(
    "/tools/{name}", response={200: ToolOut, **ERRORS}, summary="Replace a tool", auth=STAFF
)
def tool_replace(request: HttpRequest, payload: ToolIn, name: str = ToolName) -> dict[str, Any]:
    """Set every field of a tool (those left out take their defaults)."""
    return _update(request, name, payload.model_dump())


@tools_router.patch(
    "/tools/{name}", response={200: ToolOut, **ERRORS}, summary="Change a tool", auth=STAFF
)
def tool_patch(request: HttpRequest, payload: ToolPatchIn, name: str = ToolName) -> dict[str, Any]:
    """Change the fields given; ``{"enabled": false}`` takes a tool out of service."""
    return _update(request, name, payload.model_dump(exclude_unset=True))


def _update(request: HttpRequest, name: str, fields: dict[str, Any]) -> dict[str, Any]:
    user = caller(request)
    nulls = [k for k, v in fields.items() if v is None]
    if nulls:
        raise ApiError(
            422,
            "invalid_input",
            "Leave a field out instead of sending null.",
            fields=[{"field": k, "code": "null", "message": "may not be null"} for k in nulls],
        )
    try:
        tool = tool_update(name=name, changes=fields, actor=user)
    except Tool.DoesNotExist:
        raise ApiError(404, "not_found", f"There is no tool {name!r}.") from None
    except ToolRejected as exc:
        raise _rejected(exc) from exc
    return _out(tool, staff=True)


@tools_router.delete(
    "/tools/{name}", response={204: None, **ERRORS}, summary="Delete a tool", auth=STAFF
)
def tool_delete(request: HttpRequest, name: str = ToolName) -> Status[None]:
    """Remove a tool; past steps keep its name. Prefer disabling a tool plans still use."""
    user = caller(request)
    try:
        registry.tool_delete(name=name, actor=user)
    except Tool.DoesNotExist:
        raise ApiError(404, "not_found", f"There is no tool {name!r}.") from None
    return Status(204, None)


@tools_router.get(
    "/tools.yaml",
    response={200: None, **ERRORS},
    summary="Export the registry as tools.yaml",
    auth=STAFF,
    openapi_extra={
        "responses": {
            200: {
                "description": "The tools file",
                "content": {
                    "application/yaml": {
                        "schema": {
                            "type": "object",
                            "required": ["tools"],
                            "properties": {"tools": {"type": "array", "items": {"type": "object"}}},
                        }
                    }
                },
            }
        }
    },
)
def tools_export(request: HttpRequest) -> HttpResponse:
    """Every tool as a tools.yaml file (staff only: configs may hold URLs and headers)."""
    return HttpResponse(
        tools_to_yaml(Tool.objects.order_by("name")), content_type="application/yaml"
    )


@tools_router.post(
    "/tools.yaml",
    response={200: ToolsImportOut, **ERRORS},
    summary="Import a tools.yaml",
    auth=STAFF,
)
def tools_import_yaml(request: HttpRequest, payload: ToolsImportIn) -> Any:
    """Create or update the file's tools by name; a file with any problem changes nothing."""
    user = caller(request)
    try:
        return tools_import(text=payload.text, replace=payload.replace, actor=user)
    except ToolsYamlError as exc:
        raise ApiError(
            422,
            "invalid_tools_file",
            f"The file has {len(exc.problems)} problem(s); nothing was imported.",
            fields=[
                {"field": "text", "code": "invalid", "message": problem} for problem in exc.problems
            ],
        ) from exc
