"""An iterative planner's question mid-run, across real worker processes and the real openai SDK.

The model is the fake provider server on loopback. The first worker plans and runs
step 1, then the planner asks instead of giving step 2: the run waits holding no
worker, the first worker stops, the answer comes through the API, and a second
worker claims the run and finishes it with the answer.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from reviews.models import ReviewItem
from runs.lifecycle.planning import run_submit_task
from runs.models import ResourceLock, Run, RunStatus, Tool, TranscriptEvent
from runs.tokens import api_token_create
from tests.runs.api.conftest import ApiClient
from tests.runs.planning.providers.fake_llm import Answer, FakeLLM, openai_response, running
from tests.runs.processes import child_env, db_worker, processes, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123"
QUESTION = {
    "ask": "Which environment: staging or production?",
    "options": ["staging", "production"],
}


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    yield from running()


def reply(data: dict[str, Any]) -> Answer:
    return Answer(body=openai_response(json.dumps(data)))


def step(label: str, *, stop: bool) -> dict[str, Any]:
    return {
        "thought": "next",
        "next_step": f"note {label}",
        "tool": "note",
        "arguments": {"label": label},
        "stop": stop,
        "confidence": 0.9,
    }


def status_is(run: Run, *statuses: str) -> bool:
    run.refresh_from_db()
    return run.status in statuses


def test_a_question_mid_run_releases_the_worker_and_another_worker_continues_after_the_answer(
    tmp_path: Path, fake: FakeLLM, operator: User
) -> None:
    Tool.objects.create(
        name="note",
        description="Append a label to notes.txt.",
        kind=Tool.Kind.SHELL,
        config={"shell": 'echo "$PARAM_LABEL" >> notes.txt'},
        parameters_schema={
            "type": "object",
            "properties": {"label": {"type": "string"}},
            "required": ["label"],
        },
    )
    fake.queue(reply(step("built", stop=False)), reply(QUESTION), reply(step("staging", stop=True)))
    env = child_env(
        tmp_path,
        OPENAI_API_KEY=KEY,
        PLANNERWEB_OPENAI_BASE_URL=fake.url + "/v1",
        PLANNERWEB_PLANNER="openai",
        PLANNERWEB_PLANNER_SDK_RETRIES="0",
    )
    run = run_submit_task(
        title="deploy step by step", submitted_by=operator, planner="openai", mode="iterative"
    )
    notes = tmp_path / "sandbox" / "notes.txt"

    logs = tmp_path / "logs" / "first"
    with processes(db_worker("first"), env=env, logs=logs) as (first,):
        wait_for(
            lambda: status_is(run, RunStatus.AWAITING_INPUT, RunStatus.FAILED, RunStatus.ESCALATED),
            timeout=60,
            what="the planner's question",
            logs=logs,
        )
        assert run.status == RunStatus.AWAITING_INPUT, run.stop_reason
        # Waiting holds no worker: no lease, no resource lock, nothing for recovery to take.
        assert (run.lease_owner, run.lease_expires_at) == ("", None)
        assert not ResourceLock.objects.filter(run=run).exists()
        assert notes.read_text().splitlines() == ["built"]
        first_pid = first.pid
    item = ReviewItem.objects.get(run=run, kind="clarification", status="open")
    assert item.context["question"] == QUESTION["ask"]
    asked_schema = fake.requests[1].body["text"]["format"]["schema"]
    assert "ask" in asked_schema["properties"]

    api = ApiClient(api_token_create(user=operator, name="t").plaintext)
    answered = api.post(f"/runs/{run.pk}/answer", {"answer": "staging"})
    assert answered.status_code == 200, answered.json()

    logs = tmp_path / "logs" / "second"
    with processes(db_worker("second"), env=env, logs=logs) as (second,):
        wait_for(
            lambda: status_is(run, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.ESCALATED),
            timeout=60,
            what="the run to finish after the answer",
            logs=logs,
        )
        second_pid = second.pid
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    assert notes.read_text().splitlines() == ["built", "staging"]
    assert len(fake.requests) == 3
    told = json.dumps(fake.requests[2].body)
    assert "A: staging" in told and QUESTION["ask"] in told
    claims = list(
        TranscriptEvent.objects.filter(run=run, kind="run.status", payload__to_status="executing")
        .order_by("seq")
        .values_list("payload__reason", flat=True)
    )
    host = re.escape(socket.gethostname())
    # Planned and first executed by the first worker; claimed anew by the second one.
    assert claims[0].startswith("plan v1 from openai/"), claims
    assert second_pid != first_pid
    assert re.match(rf"claimed by {host}:{second_pid}\b", claims[-1]), claims
    assert TranscriptEvent.objects.filter(run=run, kind="question.answered").exists()
