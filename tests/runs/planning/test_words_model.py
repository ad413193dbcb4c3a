"""Steps in words mapped by a model: the real openai and anthropic SDKs against a loopback fake."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from runs.models import LlmCall, Run
from tests.runs.api.conftest import api_as
from tests.runs.planning.providers.fake_llm import (
    Answer,
    FakeLLM,
    anthropic_tool_use,
    openai_response,
    running,
)

RELEASE = """1. Back up prod.db
2. Run the smoke tests
3. Deploy 2.5.0 to staging
4. Tell the team "2.5.0 is on staging"
"""

GOOD = [
    {"number": 1, "tool": "backup_database", "params": {"db": "prod.db"}, "why": ""},
    {"number": 2, "tool": "run_tests", "params": {"suite": "smoke"}, "why": ""},
    {
        "number": 3,
        "tool": "deploy",
        "params": {"version": "2.5.0", "environment": "staging"},
        "why": "",
    },
    {"number": 4, "tool": "notify_team", "params": {"message": "2.5.0 is on staging"}, "why": ""},
]


@pytest.fixture
def fake(db: None, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    call_command("seed_demo", stdout=StringIO())
    settings.PLANNERWEB_PLANNER_SDK_RETRIES = 0
    settings.PLANNERWEB_PLANNER_TIMEOUT_SECONDS = 5.0
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-words")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-words")
    for server in running():
        settings.PLANNERWEB_OPENAI_BASE_URL = server.url + "/v1"
        settings.PLANNERWEB_ANTHROPIC_BASE_URL = server.url
        yield server


def openai_answers(steps: Any) -> Answer:
    return Answer(body=openai_response(json.dumps({"steps": steps})))


def mapped(operator: Any, planner: str = "openai", steps: str = RELEASE) -> Any:
    response = api_as(operator).post("/plans/from-words", {"steps": steps, "planner": planner})
    assert response.status_code == 200, response.content
    return response.json()


def test_openai_maps_every_line_into_a_plan_to_confirm_and_the_call_is_recorded(
    fake: FakeLLM, operator: Any
) -> None:
    fake.queue(openai_answers(GOOD))
    body = mapped(operator)
    assert body["ok"] is True and body["planner"] == "openai/gpt-4.1-mini"
    assert [(s["action"], s["params"]) for s in body["plan"]["steps"]] == [
        (g["tool"], g["params"]) for g in GOOD
    ]
    assert body["plan"]["steps"][3]["depends_on"] == ["step_3"]
    sent = fake.requests[0]
    assert sent.path == "/v1/responses"
    assert sent.body["text"]["format"]["name"] == "step_mapping"
    assert "- deploy: " in sent.body["instructions"]
    assert '4. Tell the team "2.5.0 is on staging"' in sent.body["input"][0]["content"]
    call = LlmCall.objects.get()
    assert (call.purpose, call.run_id, call.tokens_in, call.tokens_out) == (
        "words",
        None,
        1200,
        300,
    )
    assert not Run.objects.exists()


def test_anthropic_says_which_line_no_tool_fits_and_why(fake: FakeLLM, operator: Any) -> None:
    steps = [*GOOD[:3], {"number": 4, "tool": None, "params": {}, "why": "No tool feeds cats."}]
    fake.queue(Answer(body=anthropic_tool_use({"steps": steps}, name="submit_step_mapping")))
    body = mapped(operator, "anthropic", RELEASE.replace("Tell the team", "Feed the cat, say"))
    assert body["ok"] is False and body["plan"] is None
    assert body["planner"] == "anthropic/claude-sonnet-4-6"
    assert [s["tool"] for s in body["steps"]] == ["backup_database", "run_tests", "deploy", None]
    assert body["steps"][3]["why"] == "no tool fits: No tool feeds cats."
    sent = fake.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.body["tool_choice"]["name"] == "submit_step_mapping"


def test_an_unknown_tool_fails_its_line_only(fake: FakeLLM, operator: Any) -> None:
    fake.queue(openai_answers([*GOOD[:2], {**GOOD[2], "tool": "deploy_now"}, GOOD[3]]))
    body = mapped(operator)
    assert body["ok"] is False
    assert [s["tool"] for s in body["steps"]] == [
        "backup_database",
        "run_tests",
        None,
        "notify_team",
    ]
    why = body["steps"][2]["why"]
    assert "'deploy_now', not an enabled tool" in why and "did you mean 'deploy'" in why


def test_params_against_the_tools_schema_fail_their_line(fake: FakeLLM, operator: Any) -> None:
    bad = {**GOOD[2], "params": {"version": "2.5.0", "environment": "moon"}}
    fake.queue(openai_answers([*GOOD[:2], bad, GOOD[3]]))
    body = mapped(operator)
    assert body["ok"] is False
    why = body["steps"][2]["why"]
    assert why.startswith("deploy fits, but its params are invalid: environment")
    assert "moon" in why


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"steps": [{"number": 1, ', "answer is not JSON"),
        (json.dumps({"lines": GOOD}), "does not have the expected shape: steps"),
        (json.dumps({"steps": GOOD[:3]}), "answered for 3 line(s), not the 4 given"),
        (json.dumps({"steps": [*GOOD[:3], {**GOOD[3], "number": 3}]}), "not 1 to 4, each once"),
        (json.dumps({"steps": GOOD, "pad": "x" * 250_000}), "answer is too large"),
    ],
)
def test_an_unusable_answer_fails_every_line_with_why_after_one_call(
    fake: FakeLLM, operator: Any, text: str, reason: str
) -> None:
    fake.queue(Answer(body=openai_response(text)))
    body = mapped(operator)
    assert body["ok"] is False and body["plan"] is None
    assert reason in body["reason"]
    assert all(reason in s["why"] and s["tool"] is None for s in body["steps"])
    assert len(fake.requests) == 1  # never asked again


def test_only_operators_map_steps_with_a_model(fake: FakeLLM, reviewer: Any, outsider: Any) -> None:
    body = {"steps": RELEASE, "planner": "openai"}
    assert api_as(reviewer).post("/plans/from-words", body).status_code == 403
    assert api_as(outsider).post("/plans/from-words", body).status_code == 403
    assert fake.requests == []


def test_a_provider_without_its_key_is_refused_saying_what_to_set(
    fake: FakeLLM, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    response = api_as(operator).post("/plans/from-words", {"steps": RELEASE, "planner": "openai"})
    assert response.status_code == 422
    assert response.json()["code"] == "planner_unavailable"
    assert "set OPENAI_API_KEY" in response.json()["detail"]
    unknown = api_as(operator).post("/plans/from-words", {"steps": RELEASE, "planner": "chain"})
    assert unknown.status_code == 422
    assert fake.requests == [] and not LlmCall.objects.exists()


def test_the_words_check_offers_the_models_and_maps_with_the_chosen_one(
    fake: FakeLLM, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client()
    client.force_login(operator)
    check = client.post(reverse("runs:check"), {"plan": RELEASE}).content.decode()
    assert 'data-words-mapped-by="offline"' in check
    assert '<option value="openai">openai</option>' in check
    fake.queue(openai_answers(GOOD))
    page = client.post(reverse("runs:words"), {"plan": RELEASE, "planner": "openai"})
    assert page.status_code == 200
    assert 'data-words-mapped-by="openai/gpt-4.1-mini"' in page.content.decode()
    assert "<pre data-words-plan>goal: Back up prod.db" in page.content.decode()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    refused = client.post(reverse("runs:words"), {"plan": RELEASE, "planner": "anthropic"})
    assert refused.status_code == 422
    assert "set ANTHROPIC_API_KEY" in refused.content.decode()
    assert len(fake.requests) == 1


def test_the_call_is_bounded_by_the_token_budget(
    fake: FakeLLM, operator: Any, settings: Any
) -> None:
    settings.PLANNERWEB_BUDGET_MAX_TOKENS = 700
    fake.queue(openai_answers(GOOD))
    assert mapped(operator)["ok"] is True
    assert fake.requests[0].body["max_output_tokens"] == 700


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback address that refuses connections: a port bound, never listened on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_an_unreachable_compatible_server_is_one_503_naming_the_address_and_stores_nothing(
    fake: FakeLLM, operator: Any, settings: Any, refused_url: str
) -> None:
    settings.PLANNERWEB_LOCAL_BASE_URL = refused_url
    response = api_as(operator).post(
        "/plans/from-words", {"steps": RELEASE, "planner": "compatible"}
    )
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["code"] == "planner_unreachable"
    assert f"cannot be reached at {refused_url}" in body["detail"]
    assert body["fields"] == [
        {"field": "planner", "code": "unreachable", "message": f"no answer from {refused_url}"}
    ]
    assert "steps" not in body  # one error, not a failed line per step
    assert not LlmCall.objects.exists() and not Run.objects.exists()


def test_an_unreachable_provider_base_url_is_a_503_too(
    fake: FakeLLM, operator: Any, settings: Any, refused_url: str
) -> None:
    settings.PLANNERWEB_OPENAI_BASE_URL = refused_url
    response = api_as(operator).post("/plans/from-words", {"steps": RELEASE, "planner": "openai"})
    assert (response.status_code, response.json()["code"]) == (503, "planner_unreachable")
    assert refused_url in response.json()["detail"]
    assert not LlmCall.objects.exists()


def test_the_words_check_says_the_server_cannot_be_reached_and_keeps_the_offline_mapping(
    fake: FakeLLM, operator: Any, settings: Any, refused_url: str
) -> None:
    settings.PLANNERWEB_LOCAL_BASE_URL = refused_url
    client = Client()
    client.force_login(operator)
    page = client.post(reverse("runs:words"), {"plan": RELEASE, "planner": "compatible"})
    assert page.status_code == 503
    html = page.content.decode()
    assert f"cannot be reached at {refused_url}" in html and "data-words-error" in html
    assert 'data-words-mapped-by="offline"' in html
    assert html.count("unreachable") == 0  # no failed line per step
    assert not LlmCall.objects.exists()
