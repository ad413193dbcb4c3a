"""A server's question during a call (elicitation) becomes a review item whose answer the call gets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any, TypeVar

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connections

from reviews.models import ReviewItem, ReviewKind, ReviewStatus
from runs.execution.loops import run_in_thread_loop
from runs.lifecycle import elicitation
from runs.lifecycle.cancel import run_cancel
from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import McpServer, Run, Step, Tool, TranscriptEvent
from runs.tools.base import ToolError, ToolSpec
from runs.tools.kinds.mcp import invoke, sessions
from tests.runs.api.conftest import api_as
from tests.runs.tools.kinds.mcp.test_invoke import scenario

T = TypeVar("T")


@pytest.fixture(autouse=True)
def quick_polls(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch, fast_settings: Any
) -> None:
    # Worker threads write: no test-wide transaction (the users' fixtures ask for ``db``).
    monkeypatch.setattr(elicitation, "POLL_SECONDS", 0.05)


def eventually(find: Callable[[], T | None], what: str) -> T:
    for _ in range(600):
        found = find()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


class Execution:
    """A run submitted by ``user`` executing in a worker thread of its own."""

    def __init__(self, server: McpServer, tool: str, user: User, timeout: float = 60) -> None:
        call_command("tools_import", "--mcp", server.name, stdout=StringIO())
        name = f"{server.name}-{tool}"
        Tool.objects.filter(name=name).update(timeout_seconds=timeout)
        document = {"goal": "copy rows", "steps": [{"id": "copy", "tool": name, "params": {}}]}
        self.run = run_submit_plan(title="copy", document=document, submitted_by=user)
        assert self.run.status == "queued", self.run.stop_reason
        self.thread = threading.Thread(target=self._work)
        self.thread.start()

    def _work(self) -> None:
        try:
            run_execute(run_id=self.run.pk)
        finally:
            run_in_thread_loop(sessions.close_all())
            connections.close_all()

    def question(self) -> ReviewItem:
        return eventually(
            lambda: ReviewItem.objects.filter(
                run=self.run, kind=ReviewKind.ELICITATION, status=ReviewStatus.OPEN
            ).first(),
            "the tool's question is open",
        )

    def finished(self) -> tuple[Run, Step]:
        self.thread.join(60)
        assert not self.thread.is_alive()
        self.run.refresh_from_db()
        return self.run, Step.objects.get(run=self.run, key="copy")

    def events(self, kind: str) -> list[dict[str, Any]]:
        return list(
            TranscriptEvent.objects.filter(run=self.run, kind=kind)
            .order_by("seq")
            .values_list("payload", flat=True)
        )


@pytest.fixture
def executions() -> Iterator[list[Execution]]:
    started: list[Execution] = []
    yield started
    for execution in started:  # a failed test must not leave a worker thread behind
        if execution.thread.is_alive():
            run_cancel(run_id=execution.run.pk, user=None)
            execution.thread.join(30)


def answer(run: Run, item: ReviewItem, user: User, body: dict[str, Any]) -> Any:
    return api_as(user).post(f"/runs/{run.pk}/elicitations/{item.pk}", body)


def test_a_servers_question_is_answered_through_the_api_and_the_step_succeeds_with_it(
    stdio_server: McpServer, operator: User, executions: list[Execution]
) -> None:
    execution = Execution(stdio_server, "copy_rows", operator)
    executions.append(execution)
    item = execution.question()
    assert item.context["message"] == "Which table, and how many rows?"
    assert item.context["schema"]["required"] == ["table", "rows"]
    assert item.step is not None and item.step.key == "copy"

    response = answer(
        execution.run,
        item,
        operator,
        {"action": "accept", "content": {"table": "users", "rows": 5}},
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"item_id": item.pk, "status": "approved", "action": "accept"}

    run, step = execution.finished()
    assert run.status == "succeeded", run.stop_reason
    assert step.result == {"copied": 5, "table": "users"}
    asked = execution.events("elicitation.asked")
    assert [e["message"] for e in asked] == ["Which table, and how many rows?"]
    answered = execution.events("elicitation.answered")
    assert [(e["action"], e["content"], e["by"]) for e in answered] == [
        ("accept", {"table": "users", "rows": 5}, "olivia")
    ]


def test_a_declined_question_fails_the_step_with_the_servers_message(
    stdio_server: McpServer, operator: User, reviewer: User, executions: list[Execution]
) -> None:
    execution = Execution(stdio_server, "copy_rows", operator)
    executions.append(execution)
    item = execution.question()
    assert answer(execution.run, item, reviewer, {"action": "decline"}).status_code == 200

    run, step = execution.finished()
    assert step.status == "failed"
    assert "the user answered decline: nothing copied" in step.error
    assert run.status in ("failed", "escalated")
    item.refresh_from_db()
    assert (item.status, item.decision) == (ReviewStatus.REJECTED, "decline")


def test_a_stranger_a_bad_form_and_a_second_answer_are_refused(
    stdio_server: McpServer,
    operator: User,
    outsider: User,
    reviewer: User,
    executions: list[Execution],
) -> None:
    execution = Execution(stdio_server, "copy_rows", operator)
    executions.append(execution)
    item, run = execution.question(), execution.run

    assert answer(run, item, outsider, {"action": "decline"}).status_code == 403
    bad = answer(run, item, operator, {"action": "accept", "content": {"table": "users"}})
    assert bad.status_code == 422
    assert "'rows' is a required property" in bad.json()["detail"]
    wrong_type = answer(
        run, item, operator, {"action": "accept", "content": {"table": "u", "rows": "many"}}
    )
    assert wrong_type.status_code == 422
    assert answer(run, item, operator, {"action": "maybe"}).status_code == 422
    assert answer(run, item, operator, {"action": "accept", "content": {"table": "t", "rows": 1}})
    assert answer(run, item, reviewer, {"action": "decline"}).status_code == 409
    item.refresh_from_db()
    assert item.decided_by == operator

    _, step = execution.finished()
    assert step.result == {"copied": 1, "table": "t"}


def test_cancelling_the_run_closes_the_question_and_stops_the_call(
    stdio_server: McpServer, operator: User, executions: list[Execution]
) -> None:
    execution = Execution(stdio_server, "copy_rows", operator)
    executions.append(execution)
    item = execution.question()

    run_cancel(run_id=execution.run.pk, user=operator, reason="not today")

    run, step = execution.finished()
    assert run.status == "cancelled"
    assert step.status == "cancelled"
    item.refresh_from_db()
    assert (item.status, item.decision) == (ReviewStatus.EXPIRED, "run_cancelled")
    late = answer(run, item, operator, {"action": "accept", "content": {"table": "t", "rows": 1}})
    assert late.status_code == 409


def test_a_question_nobody_answers_times_out_the_step_and_closes_the_item(
    stdio_server: McpServer, operator: User, executions: list[Execution]
) -> None:
    execution = Execution(stdio_server, "copy_rows", operator, timeout=6)
    executions.append(execution)

    run, step = execution.finished()
    assert step.status == "failed"
    assert step.error == (
        "timed out after 6s waiting for an answer to the tool's question (nobody answered)"
    )
    item = ReviewItem.objects.get(run=run, kind=ReviewKind.ELICITATION)
    assert (item.status, item.decision) == (ReviewStatus.EXPIRED, "unanswered")
    assert [e["action"] for e in execution.events("elicitation.answered")] == ["cancel"]


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_direct_request_of_an_older_protocol_is_answered_too(
    transport: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    operator: User,
    executions: list[Execution],
) -> None:
    monkeypatch.setattr(sessions, "CONNECT_MODE", "legacy")  # a server of the 2025 protocol
    server = request.getfixturevalue(f"{transport}_server")
    execution = Execution(server, "ask", operator)
    executions.append(execution)
    item = execution.question()
    assert item.context["message"] == "Which table?"

    ok = answer(execution.run, item, operator, {"action": "accept", "content": {"name": "users"}})
    assert ok.status_code == 200

    run, step = execution.finished()
    assert run.status == "succeeded", run.stop_reason
    # Text content, or structured content wrapping it, as the negotiated protocol has it.
    assert "got action='accept' data=Table(name='users')" in str(step.result)


def test_a_call_outside_a_run_cannot_ask(stdio_server: McpServer) -> None:
    spec = ToolSpec(name="x", kind="mcp", config={"server": "local", "tool": "copy_rows"})
    with pytest.raises(ToolError, match="only during a run's step"):
        scenario(lambda: invoke(spec, {}))
