"""API endpoint for workflows: the deterministic plan templates a planner may hand work to."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema

from runs.api.auth import role_auth
from runs.api.errors import ERRORS
from runs.models import Workflow
from runs.permissions import can_view_runs

workflows_router = Router(tags=["workflows"], auth=role_auth(can_view_runs, "see workflows"))


class WorkflowOut(Schema):
    name: str
    description: str
    enabled: bool
    parameters_schema: dict[str, Any] = Field(description="JSON Schema of the params it takes.")
    steps: int = Field(description="Steps in its plan template.")


def _out(workflow: Workflow) -> WorkflowOut:
    document = workflow.document
    steps = document.get("steps") if isinstance(document, dict) else document
    return WorkflowOut(
        name=workflow.name,
        description=workflow.description,
        enabled=workflow.enabled,
        parameters_schema=workflow.parameters_schema or {},
        steps=len(steps) if isinstance(steps, list) else 0,
    )


@workflows_router.get("", response={200: list[WorkflowOut], **ERRORS}, summary="List workflows")
def workflow_list(request: HttpRequest) -> list[WorkflowOut]:
    """Registered workflows (admins register them), by name; planners see the enabled ones."""
    return [_out(w) for w in Workflow.objects.order_by("name")]
