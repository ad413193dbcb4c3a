"""plannerweb's own MCP server, in a real Daphne, driven with the MCP SDK's client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from django.contrib.auth.models import User
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from reviews.models import ApprovalPolicy, ReviewItem
from runs.lifecycle.intake import TaskTitleMissing, planner_task_check
from runs.models import Run, RunStatus, Task, Tool
from runs.planning.availability import PlannerUnavailable
from runs.statemachine import RUN_ACTIVE
from runs.tokens import api_token_create
from tests.reviews.conftest import all_ticks, bound
from tests.runs.api.conftest import api_as
from tests.runs.processes import child_env, daphne, free_port, port_open, processes, wait_for

PLAN = {
    "goal": "Say hello",
    "steps": [{"id": "hello", "tool": "echo", "params": {"text": "hi"}}],
}


@pytest.fixture(scope="module")
def daphne_url(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Daphne serving plannerweb (its worker inside) on the test database, for the module."""
    tmp = tmp_path_factory.mktemp("mcp-server")
    port = free_port()
    # No OpenAI key there (directly or as a file): the openai planner is unusable.
    env = child_env(tmp, PLANNERWEB_WORKER="inprocess", OPENAI_API_KEY="", OPENAI_API_KEY_FILE="")
    with processes(daphne(port), env=env, logs=tmp / "logs"):
        wait_for(lambda: port_open(port), timeout=30, what="daphne", logs=tmp / "logs")
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
def served(transactional_db: None, daphne_url: str) -> str:
    Tool.objects.create(name="echo", kind="python", config={"callable": "runs.tools.builtin.echo"})
    return daphne_url


# A run in one of these is in a worker's hands (planned, executed, replanned, rolled back).
WORKED_ON = RUN_ACTIVE | {RunStatus.QUEUED, RunStatus.PLANNING}


def call(url: str, token: str, tool: str, arguments: dict[str, Any]) -> Any:
    async def go() -> Any:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with http, Client(streamable_http_client(url, http_client=http)) as client:
            return await client.call_tool(tool, arguments)

    return asyncio.run(go())


def test_an_agent_submits_a_plan_that_a_reviewer_approves_and_reads_the_result(
    served: str, operator: User, reviewer: User
) -> None:
    ApprovalPolicy.objects.create(mode="always")
    token = api_token_create(user=operator, name="agent").plaintext
    listed = call(served, token, "list_tools", {})
    assert [t["name"] for t in listed.structured_content["result"]] == ["echo"]
    checked = call(
        served,
        token,
        "validate_plan",
        {"plan": {"goal": "x", "steps": [{"id": "a", "tool": "nope"}]}},
    )
    assert checked.structured_content["valid"] is False
    submitted = call(served, token, "submit_plan", {"plan": PLAN})
    run_id = submitted.structured_content["run"]["id"]
    wait_for(
        lambda: Run.objects.get(pk=run_id).status == "awaiting_approval",
        timeout=30,
        what="the plan to wait for approval",
    )
    item = ReviewItem.objects.get(run_id=run_id, status="open")
    decided = api_as(reviewer).post(
        f"/reviews/{item.pk}/decide",
        {"decision": "approve", "checklist": all_ticks(item), **bound(item)},
    )
    assert decided.status_code == 200, decided.json()
    waited = call(served, token, "wait_for_run", {"run_id": run_id, "timeout_seconds": 60})
    body = waited.structured_content
    assert body["finished"] is True and body["run"]["status"] == "succeeded"
    assert body["steps"][0]["result"] == {"text": "hi"}


def test_a_token_of_the_wrong_role_is_refused(served: str, reviewer: User, outsider: User) -> None:
    result = call(
        served, api_token_create(user=reviewer, name="r").plaintext, "submit_plan", {"plan": PLAN}
    )
    assert result.is_error
    assert "Your role does not allow you to submit tasks" in result.content[0].text
    assert not Run.objects.exists()
    outsider_token = api_token_create(user=outsider, name="o").plaintext
    response = httpx2.post(served, headers={"Authorization": f"Bearer {outsider_token}"}, json={})
    assert response.status_code == 403
    assert httpx2.post(served, json={}).status_code == 401
    assert (
        httpx2.post(served, headers={"Authorization": "Bearer pw_bad"}, json={}).status_code == 401
    )


@pytest.mark.usefixtures("no_openai_key")
def test_plan_task_refuses_what_the_api_refuses_and_creates_nothing(
    served: str, operator: User
) -> None:
    token = api_token_create(user=operator, name="agent").plaintext
    with pytest.raises(TaskTitleMissing) as untitled:
        planner_task_check(title="  ", planner="playbook")
    with pytest.raises(PlannerUnavailable) as keyless:
        planner_task_check(title="Say hello", planner="openai")
    for arguments, sentence in (
        ({"title": "  ", "planner": "playbook"}, str(untitled.value)),
        ({"title": "Say hello", "planner": "openai"}, str(keyless.value)),
    ):
        result = call(served, token, "plan_task", arguments)
        assert result.is_error
        assert sentence in result.content[0].text
    assert not Run.objects.exists() and not Task.objects.exists()
    planned = call(served, token, "plan_task", {"title": "Say hello", "planner": "playbook"})
    assert not planned.is_error
    run = Run.objects.filter(pk=planned.structured_content["run"]["id"])
    assert run.exists()
    # The server's worker plans it now: let it be done before the test's database is emptied.
    wait_for(
        lambda: run.filter(lease_owner="").exclude(status__in=WORKED_ON).exists(),
        timeout=60,
        what="the server's worker to be done with the planned run",
    )
