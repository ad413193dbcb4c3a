"""Page fixtures: a noop tool, a queued run of two steps, clients signed in as a role."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client

from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, RunStatus, Tool

VALID_PLAN = {
    "goal": "Say hello twice",
    "steps": [
        {"id": "first", "action": "noop", "description": "the first hello"},
        {"id": "second", "action": "noop", "depends_on": ["first"]},
    ],
    "rollback": [{"action": "noop", "description": "undo"}],
}


@pytest.fixture
def noop_tool(db: None) -> Tool:
    return Tool.objects.create(
        name="noop",
        kind="python",
        config={"callable": "runs.tools.builtin.noop"},
        parameters_schema={"type": "object"},
        description="Return at once.",
    )


@pytest.fixture
def queued_run(noop_tool: Tool, operator: User) -> Run:
    run = run_submit_plan(
        title="Two hellos", document=VALID_PLAN, submitted_by=operator, max_parallel=2
    )
    assert run.status == RunStatus.QUEUED
    return run


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]
