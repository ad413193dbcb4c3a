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

from runs.lifecycle.submit import run_submit_plan
from runs.models import AgentCall, Run, RunStatus, Step, Tool
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
    # A non-idempotent call caught mid-flight is not made again: test_agent.py, on the rows
    # a killed worker leaves (the same replay path, without two more worker processes).
