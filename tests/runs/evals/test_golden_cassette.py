"""A recorded run saved as a golden task: its provider answers become the task's cassette."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from runs.demo import TOOLS_FILE
from runs.lifecycle.claim import run_execute
from runs.lifecycle.planning import run_plan, run_submit_task
from runs.models import EvalSuite, ModelAnswer, Run
from runs.tools.yaml_io import tools_import
from tests.runs.api.conftest import api_as
from tests.runs.planning.providers.fake_llm import (
    Answer,
    FakeLLM,
    anthropic_tool_use,
    chat_completion,
    openai_response,
    running,
)
from tests.runs.views.conftest import client_for, messages_of

pytestmark = pytest.mark.django_db(transaction=True)

PLAN = {
    "goal": "Say hello",
    "steps": [
        {"id": "first", "action": "noop"},
        {"id": "second", "action": "echo", "params": {"text": "hello"}, "depends_on": ["first"]},
    ],
}


@pytest.fixture
def upstream(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    """The provider a recorded run talks to: a loopback server in the OpenAI wire format."""
    settings.PLANNERWEB_RETRY_BACKOFF_SECONDS = 0.01
    settings.PLANNERWEB_RECORD_MODEL_ANSWERS = True
    settings.VAR_DIR = tmp_path / "var"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-recording")
    tools_import(text=TOOLS_FILE.read_text())
    for server in running():
        settings.PLANNERWEB_OPENAI_BASE_URL = server.url + "/v1"
        yield server


def planned_run(operator: User, title: str = "Say hello") -> Run:
    run = run_submit_task(
        title=title, submitted_by=operator, planner="openai", model="gpt-4.1-mini", mode="upfront"
    )
    run_plan(run_id=run.pk)
    assert run_execute(run_id=run.pk) == "succeeded"
    return run


def replay(suite: str, folder: Path) -> tuple[int, dict[str, Any]]:
    """``evaluate SUITE --replay`` in a database of its own; its exit code and task report."""
    report = folder / "report.json"
    try:
        call_command("evaluate", suite, "--replay", "--json", str(report))
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, json.loads(report.read_text())["tasks"][0]


def test_a_recorded_run_saved_from_the_api_replays_offline_with_its_cassette(
    upstream: FakeLLM,
    operator: User,
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upstream.queue(Answer(body=openai_response(json.dumps(PLAN))))
    run = planned_run(operator)
    assert ModelAnswer.objects.filter(run=run).values_list("path", "status").get() == (
        "responses",
        200,
    )

    response = api_as(operator).post(f"/runs/{run.pk}/golden", {"suite": "golden"})
    assert response.status_code == 201, response.content
    assert response.json() == {
        "suite": "golden",
        "task": f"run-{run.pk}",
        "cassette": True,
        "command": "manage.py evaluate golden --replay",
    }
    task = yaml.safe_load(EvalSuite.objects.get(name="golden").text)["tasks"][0]
    assert (task["planner"], task["model"], "plan" in task) == ("openai", "gpt-4.1-mini", False)
    tape = settings.VAR_DIR / "evaluate" / "cassettes" / "golden" / f"run-{run.pk}.json"
    assert [i["path"] for i in json.loads(tape.read_text())["interactions"]] == ["responses"]

    # No provider and no key any more: the new task plans from its cassette alone.
    upstream.stop()
    monkeypatch.delenv("OPENAI_API_KEY")
    code, replayed = replay("golden", tmp_path)
    assert (code, replayed["passed"], replayed["outcome"]) == (0, True, "succeeded")
    assert replayed["tools"] == ["noop", "echo"]
    assert (replayed["model_calls"], replayed["network_calls"]) == (1, 0)
    assert replayed["cassette_misses"] == []
    assert len(upstream.requests) == 1


def test_the_run_page_says_the_cassette_was_kept_and_a_changed_answer_set_misses(
    upstream: FakeLLM, operator: User, settings: Any, tmp_path: Path
) -> None:
    upstream.queue(Answer(body=openai_response(json.dumps(PLAN))))
    run = planned_run(operator)
    response = client_for(operator).post(f"/runs/{run.pk}/golden/", {"suite": "golden"})
    assert messages_of(response) == [
        f"Saved as task run-{run.pk} of suite golden with its recorded model answers: "
        "manage.py evaluate golden --replay"
    ]
    # The task's prompt changed since it was recorded: reported as a miss, not served.
    suite = EvalSuite.objects.get(name="golden")
    suite.text = suite.text.replace("text: Say hello", "text: Say hello politely")
    suite.save()
    upstream.stop()
    code, replayed = replay("golden", tmp_path)
    assert code == 1
    assert replayed["cassette_misses"] == ["call 1: openai /responses"]
    assert replayed["network_calls"] == 0


def test_a_run_that_was_not_recorded_keeps_its_plan_and_no_cassette(
    upstream: FakeLLM, operator: User, settings: Any
) -> None:
    settings.PLANNERWEB_RECORD_MODEL_ANSWERS = False
    upstream.queue(Answer(body=openai_response(json.dumps(PLAN))))
    run = planned_run(operator)
    assert not ModelAnswer.objects.exists()
    response = api_as(operator).post(f"/runs/{run.pk}/golden", {"suite": "golden"})
    assert response.json()["cassette"] is False
    task = yaml.safe_load(EvalSuite.objects.get(name="golden").text)["tasks"][0]
    assert (task["planner"], task["plan"]) == ("manual", PLAN)
    assert not (settings.VAR_DIR / "evaluate" / "cassettes").exists()


def test_the_api_refuses_bad_input_other_roles_and_unfinished_runs(
    upstream: FakeLLM, operator: User, reviewer: User
) -> None:
    upstream.queue(Answer(body=openai_response(json.dumps(PLAN))))
    run = planned_run(operator)
    api = api_as(operator)
    assert api.post(f"/runs/{run.pk}/golden", {"suite": "../etc"}).status_code == 422
    assert api.post(f"/runs/{run.pk}/golden", {"suite": "g", "x": 1}).status_code == 422
    assert api_as(reviewer).post(f"/runs/{run.pk}/golden", {}).status_code == 403
    assert api.post("/runs/999999/golden", {}).status_code == 404
    queued = run_submit_task(title="Later", submitted_by=operator, planner="manual")
    refused = api.post(f"/runs/{queued.pk}/golden", {})
    assert refused.status_code == 409
    assert refused.json()["code"] == "not_golden"
    assert not EvalSuite.objects.exists()


def test_a_recorded_answer_is_stored_redacted(upstream: FakeLLM, operator: User) -> None:
    secret = "sk-live0123456789abcdefXYZ"
    plan = {
        "goal": "Say hello",
        "steps": [{"id": "say", "action": "echo", "params": {"text": f"key {secret}"}}],
    }
    upstream.queue(Answer(body=openai_response(json.dumps(plan))))
    run = run_submit_task(
        title="Say hello", submitted_by=operator, planner="openai", mode="upfront"
    )
    run_plan(run_id=run.pk)
    stored = json.dumps(ModelAnswer.objects.get(run=run).body)
    assert secret not in stored
    assert "[REDACTED:openai_key" in stored


@pytest.mark.parametrize(
    ("provider", "setting", "suffix", "answer"),
    [
        ("anthropic", "PLANNERWEB_ANTHROPIC_BASE_URL", "", anthropic_tool_use(PLAN)),
        ("compatible", "PLANNERWEB_LOCAL_BASE_URL", "/v1", chat_completion(json.dumps(PLAN))),
    ],
)
def test_each_providers_recorded_answers_replay_offline(
    upstream: FakeLLM,
    operator: User,
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    setting: str,
    suffix: str,
    answer: dict[str, Any],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-recording")
    setattr(settings, setting, upstream.url + suffix)
    upstream.queue(Answer(body=answer))
    run = run_submit_task(
        title="Say hello", submitted_by=operator, planner=provider, mode="upfront"
    )
    run_plan(run_id=run.pk)
    assert run_execute(run_id=run.pk) == "succeeded"
    saved = api_as(operator).post(f"/runs/{run.pk}/golden", {"suite": "golden"})
    assert saved.json()["cassette"] is True
    upstream.stop()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    code, replayed = replay("golden", tmp_path)
    assert (code, replayed["planner"], replayed["tools"]) == (0, provider, ["noop", "echo"])
    assert (replayed["model_calls"], replayed["network_calls"]) == (1, 0)


def test_a_run_planned_by_the_default_planner_keeps_the_provider_that_answered(
    upstream: FakeLLM, operator: User, settings: Any
) -> None:
    settings.PLANNERWEB_PLANNER = "openai"
    upstream.queue(Answer(body=openai_response(json.dumps(PLAN))))
    run = run_submit_task(title="Say hello", submitted_by=operator, planner="", mode="upfront")
    run_plan(run_id=run.pk)
    assert run_execute(run_id=run.pk) == "succeeded"
    assert api_as(operator).post(f"/runs/{run.pk}/golden", {}).json()["cassette"] is True
    task = yaml.safe_load(EvalSuite.objects.get(name="golden").text)["tasks"][0]
    assert (task["planner"], "plan" in task) == ("openai", False)
