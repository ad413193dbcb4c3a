"""Recorded model answers: record through the real SDK, replay without network, a changed prompt misses."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tests.runs.planning.providers.fake_llm import Answer, FakeLLM, openai_response, running

pytestmark = pytest.mark.django_db(transaction=True)

PLAN = {
    "goal": "Say hello",
    "steps": [
        {"id": "first", "action": "noop"},
        {"id": "second", "action": "echo", "params": {"text": "hello"}, "depends_on": ["first"]},
    ],
}


@pytest.fixture
def upstream(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    """The provider as seen when recording: a loopback server in the OpenAI wire format."""
    settings.PLANNERWEB_RETRY_BACKOFF_SECONDS = 0.01
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-recording")
    for server in running():
        settings.PLANNERWEB_OPENAI_BASE_URL = server.url + "/v1"
        yield server


def suite(folder: Path, text: str = "Say hello") -> Path:
    path = folder / "hello.yaml"
    path.write_text(
        "name: hello\ntasks:\n"
        f"  - name: greet\n    text: {text}\n    planner: openai\n    model: gpt-4.1-mini\n"
        "    expect: {outcome: succeeded, tools: {order: [noop, echo]}}\n"
    )
    return path


def evaluate(path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    report = path.parent / "report.json"
    try:
        call_command("evaluate", str(path), "--in-place", "--json", str(report), *args)
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, json.loads(report.read_text())["tasks"][0]


def test_record_then_replay_gives_the_same_result_without_network(
    tmp_path: Path, upstream: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.queue(Answer(body=openai_response(json.dumps(PLAN))))
    cassettes = tmp_path / "tapes"
    code, recorded = evaluate(suite(tmp_path), "--record", "--cassettes", str(cassettes))
    assert (code, recorded["outcome"], recorded["network_calls"]) == (0, "succeeded", 1)
    tape = json.loads((cassettes / "greet.json").read_text())
    assert [i["path"] for i in tape["interactions"]] == ["responses"]
    # The real provider is gone, and so is its key: the replay needs neither.
    upstream.stop()
    monkeypatch.delenv("OPENAI_API_KEY")
    code, replayed = evaluate(suite(tmp_path), "--replay", "--cassettes", str(cassettes))
    assert code == 0
    assert replayed["network_calls"] == 0
    same = ("outcome", "tools", "steps", "tokens", "cost", "passed")
    assert {k: replayed[k] for k in same} == {k: recorded[k] for k in same}
    assert len(upstream.requests) == 1


def test_a_prompt_changed_since_recording_is_a_cassette_miss(
    tmp_path: Path, upstream: FakeLLM
) -> None:
    upstream.queue(Answer(body=openai_response(json.dumps(PLAN))))
    cassettes = tmp_path / "tapes"
    assert evaluate(suite(tmp_path), "--record", "--cassettes", str(cassettes))[0] == 0
    upstream.queue(Answer(body=openai_response(json.dumps(PLAN))))  # never to be asked
    changed = suite(tmp_path, text="Say hello politely")
    code, task = evaluate(changed, "--replay", "--cassettes", str(cassettes))
    assert code == 1
    assert task["cassette_misses"] == ["call 1: openai /responses"]
    assert task["failures"][0].startswith("cassette miss")
    assert task["outcome"] == "escalated"
    assert len(upstream.requests) == 1  # the miss was not sent on


def test_provider_overrides_the_tasks_planner_with_a_progress_bar_and_no_sdk_logs(
    tmp_path: Path, upstream: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "other.yaml"
    path.write_text(
        "name: other\ntasks:\n"
        "  - name: greet\n    text: Say hello\n    planner: anthropic\n"
        "    expect: {outcome: succeeded, tools: {order: [noop, echo]}}\n"
    )
    report, err = tmp_path / "report.json", io.StringIO()
    upstream.queue(Answer(body=openai_response(json.dumps(PLAN))))
    call_command(
        "evaluate",
        str(path),
        "--in-place",
        "--provider",
        "openai",
        "--model",
        "gpt-4.1-nano",
        "--record",
        "--cassettes",
        str(tmp_path / "tapes"),
        "--json",
        str(report),
        stderr=err,
    )
    task = json.loads(report.read_text())["tasks"][0]
    assert (task["planner"], task["passed"]) == ("openai", True)
    assert [(r.path, r.body["model"]) for r in upstream.requests] == [
        ("/v1/responses", "gpt-4.1-nano")
    ]
    assert err.getvalue().splitlines() == ["[####################] 1/1 greet: pass"]
    sdk = [r for r in caplog.records if r.name.split(".")[0] in ("httpx2", "openai")]
    assert sdk == []


def test_sdk_request_logs_show_when_asked_for(
    tmp_path: Path, upstream: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    upstream.queue(Answer(body=openai_response(json.dumps(PLAN))))
    call_command(
        "evaluate",
        str(suite(tmp_path)),
        "--in-place",
        "--record",
        "-v",
        "2",
        "--cassettes",
        str(tmp_path / "tapes"),
    )
    assert any(r.name == "httpx2" and "POST" in r.getMessage() for r in caplog.records)
    # Quieted for the command only: the loggers are as they were.
    assert logging.getLogger("httpx2").level == logging.NOTSET
