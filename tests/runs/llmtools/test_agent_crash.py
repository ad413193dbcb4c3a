"""A real worker SIGKILLed inside an agent step's tool call, and the worker that takes the run over.

The model is the fake provider server on loopback (both workers reach it through
the real openai SDK). The agent first calls ``note`` (appends a line), then
``block`` (blocks until released); the first worker dies inside ``block``.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from reviews.actions import allowed_actions
from reviews.models import EscalationCause, ReviewItem, ReviewKind
from runs.lifecycle.escalations import review_resolve_escalation
from runs.lifecycle.submit import run_submit_plan
from runs.models import AgentCall, Run, RunStatus, Step, Tool, TranscriptEvent
from tests.runs.planning.providers.fake_llm import Answer, FakeLLM, openai_response, running
from tests.runs.processes import child_env, db_worker, processes, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123"
BLOCK = (
    'echo "$$" >> block.txt; '
    "if [ ! -e released ]; then sleep 60 & echo $! > sleep.pid; wait; fi; echo released"
)


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    yield from running()


def decision(tool: str | None, answer: Any = None, **arguments: Any) -> Answer:
    data = {"thought": "t", "tool": tool, "arguments": arguments, "done": tool is None}
    if tool is None:
        data["answer"] = answer
    return Answer(body=openai_response(json.dumps(data)))


def setup_run(fake: FakeLLM, *, block_idempotent: bool) -> Run:
    Tool.objects.create(
        name="agent",
        kind=Tool.Kind.AGENT,
        config={"provider": "openai"},
        parameters_schema={"type": "object"},
        timeout_seconds=120,
        idempotent=True,  # its finished inner calls are replayed, never repeated
    )
    Tool.objects.create(
        name="note",
        kind=Tool.Kind.SHELL,
        config={"shell": 'echo "$PARAM_LABEL" >> notes.txt'},
        parameters_schema={"type": "object", "properties": {"label": {"type": "string"}}},
    )
    Tool.objects.create(
        name="block",
        kind=Tool.Kind.SHELL,
        config={"shell": BLOCK},
        parameters_schema={"type": "object"},
        timeout_seconds=120,
        idempotent=block_idempotent,
    )
    fake.queue(decision("note", label="a"), decision("block"), decision(None, "both done"))
    params = {"instruction": "note a, then block", "tools": ["note", "block"]}
    document = {"steps": [{"id": "work", "action": "agent", "params": params}]}
    return run_submit_plan(title="agent", document=document, submitted_by=None)


def kill_inside_block(tmp_path: Path, env: dict[str, str]) -> None:
    sandbox, logs = tmp_path / "sandbox", tmp_path / "logs" / "victim"
    with processes(db_worker("victim"), env=env, logs=logs) as (victim,):
        wait_for(
            lambda: (sandbox / "sleep.pid").exists(),
            timeout=60,
            what="the agent's block call to start",
            logs=logs,
        )
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
    (sandbox / "released").touch()


def take_over(tmp_path: Path, env: dict[str, str], run: Run) -> None:
    logs = tmp_path / "logs" / "survivor"

    def ended() -> bool:
        run.refresh_from_db()
        return run.status not in (RunStatus.QUEUED, RunStatus.EXECUTING)

    with processes(db_worker("survivor"), env=env, logs=logs):
        wait_for(ended, timeout=60, what="the takeover to finish", logs=logs)


def worker_env(tmp_path: Path, fake: FakeLLM) -> dict[str, str]:
    return child_env(
        tmp_path,
        OPENAI_API_KEY=KEY,
        PLANNERWEB_OPENAI_BASE_URL=fake.url + "/v1",
        PLANNERWEB_PLANNER="openai",
        PLANNERWEB_PLANNER_SDK_RETRIES="0",
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_takeover_replays_finished_inner_calls_and_repeats_an_idempotent_one(
    tmp_path: Path, fake: FakeLLM
) -> None:
    run = setup_run(fake, block_idempotent=True)
    env = worker_env(tmp_path, fake)
    kill_inside_block(tmp_path, env)
    take_over(tmp_path, env, run)
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    sandbox = tmp_path / "sandbox"
    assert lines(sandbox / "notes.txt") == ["a"]  # the finished call was not made again
    assert len(lines(sandbox / "block.txt")) == 2  # caught mid-flight, idempotent: made again
    assert Step.objects.get(run=run).result == "both done"
    assert len(fake.requests) == 3  # no model call was repeated either
    statuses = list(AgentCall.objects.filter(run=run).values_list("tool", "status"))
    assert statuses == [("note", "succeeded"), ("block", "succeeded")]


@pytest.mark.timeout(360)  # three worker processes start one after another
def test_a_non_idempotent_inner_call_caught_mid_flight_escalates_and_a_retry_makes_it_again(
    tmp_path: Path, fake: FakeLLM, reviewer: User
) -> None:
    run = setup_run(fake, block_idempotent=False)
    env = worker_env(tmp_path, fake)
    kill_inside_block(tmp_path, env)
    take_over(tmp_path, env, run)
    sandbox = tmp_path / "sandbox"
    # Escalated like a step that may have partly run, naming the inner call; nothing repeated.
    assert run.status == RunStatus.ESCALATED, run.stop_reason
    assert "call 1 to 'block' was in flight when its worker stopped" in run.stop_reason
    step = Step.objects.get(run=run)
    assert step.status == "running"
    item = ReviewItem.objects.get(run=run, kind=ReviewKind.ESCALATION)
    assert (item.cause, item.step_id) == (EscalationCause.PARTIAL_RUN, step.pk)
    assert "'block' was in flight" in item.reason_opened
    assert set(allowed_actions(item)) >= {"retry", "skip"}
    assert lines(sandbox / "notes.txt") == ["a"]
    assert len(lines(sandbox / "block.txt")) == 1
    assert len(fake.requests) == 2

    # The reviewer checked by hand and retries: the in-flight call is made again, the
    # finished one replayed, and the model asked only for what comes next.
    review_resolve_escalation(
        item_id=item.pk, user=reviewer, action="retry", checklist=range(len(item.checklist))
    )
    assert AgentCall.objects.get(run=run, tool="block").status == "redo"
    take_over(tmp_path, env, run)
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    assert lines(sandbox / "notes.txt") == ["a"]
    assert len(lines(sandbox / "block.txt")) == 2
    assert Step.objects.get(run=run).result == "both done"
    assert len(fake.requests) == 3
    statuses = list(AgentCall.objects.filter(run=run).values_list("tool", "status"))
    assert statuses == [("note", "succeeded"), ("block", "succeeded")]
    kinds = TranscriptEvent.objects.filter(run=run, kind="agent.tool_call")
    assert "redo" in [e.payload["status"] for e in kinds]


def test_the_agents_token_budget_counts_the_calls_made_before_a_crash(
    tmp_path: Path, fake: FakeLLM
) -> None:
    run = setup_run(fake, block_idempotent=True)
    # Each fake answer costs 1500 tokens: two are made before the kill.
    Tool.objects.filter(name="agent").update(config={"provider": "openai", "max_tokens": 2500})
    env = worker_env(tmp_path, fake)
    kill_inside_block(tmp_path, env)
    assert list(AgentCall.objects.filter(run=run).values_list("tokens", flat=True)) == [1500, 1500]
    take_over(tmp_path, env, run)
    step = Step.objects.get(run=run)
    assert run.status == RunStatus.FAILED
    assert step.status == "failed"
    assert "spent its token budget (3000 > 2500)" in step.error
    assert len(fake.requests) == 2  # the takeover asked the model nothing more
