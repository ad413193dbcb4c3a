"""API endpoints for playbooks: list them, and keep a succeeded run's plan as one.

Each endpoint parses, checks the role, calls a selector or service, returns a schema.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from runs.api.auth import caller, role_auth
from runs.api.errors import ERRORS, ApiError, field_error
from runs.api.inputs import MAX_ID, In
from runs.lifecycle.errors import RunError
from runs.lifecycle.playbooks import PlaybookNameError, playbook_save_from_run
from runs.models import Playbook, Run
from runs.permissions import can_view_runs

playbooks_router = Router(tags=["playbooks"], auth=role_auth(can_view_runs, "see playbooks"))


class PlaybookOut(Schema):
    name: str
    task_text: str
    source_run: int | None = Field(None, description="The run whose plan it keeps, if any.")
    uses: int
    steps: int = Field(description="Steps in the stored plan.")


class PlaybookIn(In):
    run: int = Field(ge=1, le=MAX_ID, description="A succeeded run whose current plan to keep.")
    name: str = Field(min_length=1, max_length=100, description="Slug: a-z, 0-9, '-', '_'.")
    task_text: str = Field(
        "",
        max_length=2000,
        description="What tasks it answers (default: the run's task).",
    )


def _out(playbook: Playbook) -> PlaybookOut:
    document = playbook.document if isinstance(playbook.document, dict) else {}
    steps = document.get("steps")
    return PlaybookOut(
        name=playbook.name,
        task_text=playbook.task_text,
        source_run=playbook.source_run_id,
        uses=playbook.uses,
        steps=len(steps) if isinstance(steps, list) else 0,
    )


@playbooks_router.get("", response={200: list[PlaybookOut], **ERRORS}, summary="List playbooks")
def playbook_list(request: HttpRequest) -> list[PlaybookOut]:
    """The stored plans the offline planner reuses, by name."""
    return [_out(p) for p in Playbook.objects.order_by("name")]


@playbooks_router.post(
    "",
    response={201: PlaybookOut, **ERRORS},
    summary="Keep a succeeded run's plan as a playbook",
    auth=role_auth(can_view_runs, "save playbooks"),  # operators and reviewers
)
def playbook_create(request: HttpRequest, payload: PlaybookIn) -> Status[PlaybookOut]:
    """404 for no such run, 409 when it did not succeed, 422 for a bad or taken name."""
    try:
        playbook = playbook_save_from_run(
            run_id=payload.run, name=payload.name, task_text=payload.task_text, user=caller(request)
        )
    except Run.DoesNotExist:
        raise ApiError(404, "not_found", f"There is no run {payload.run}.") from None
    except RunError as exc:
        raise ApiError(409, "not_succeeded", str(exc)) from exc
    except PlaybookNameError as exc:
        raise field_error("name", "invalid", str(exc)) from exc
    return Status(201, _out(playbook))
