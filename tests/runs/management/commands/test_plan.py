"""manage.py plan: dry runs from a playbook and from a model, and what it refuses as the API does."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from reviews.models import ReviewItem, ReviewKind
from runs.management.commands import plan as plan_command
from runs.models import LlmCall, Run, Task, TranscriptEvent
from runs.planning.providers import FACTORIES
from runs.planning.providers.scripted import ScriptedProvider
from tests.runs.api.conftest import api_as
from tests.runs.planning.conftest import good_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(db: None, settings: Any, tmp_path: Any) -> None:
    call_command("seed_demo", stdout=StringIO())


def test_plan_dry_run_prints_the_validated_plan_and_stores_nothing(demo: None) -> None:
    out, err = StringIO(), StringIO()
    call_command(
        "plan",
        "Release 3.2.0 to staging, smoke test it, then release it to production",
        "--provider",
        "playbook",
        "--dry-run",
        stdout=out,
        stderr=err,
    )
    document = json.loads(out.getvalue())
    assert [s["id"] for s in document["steps"]][0] == "unit_tests"
    assert "plan from playbook:demo-deploy" in err.getvalue()
    assert not TranscriptEvent.objects.exists() and not LlmCall.objects.exists()


def test_plan_dry_run_with_a_model_prints_usage_and_problems(
    planner_tools: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.PLANNERWEB_PLANNER_REPAIR_ROUNDS = 1
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # usable here; the model is a stand-in
    bad = {"steps": [{"id": "a", "action": "format_disk"}]}
    monkeypatch.setitem(FACTORIES, "openai", lambda **_: ScriptedProvider([bad, bad]))
    err = StringIO()
    with pytest.raises(CommandError, match="no valid plan") as caught:
        call_command(
            "plan", "t", "--provider", "openai", "--model", "gpt-4.1-mini", "--dry-run", stderr=err
        )
    assert caught.value.returncode == 2
    assert "format_disk" in err.getvalue()
    assert "gpt-4.1-mini plan:" in err.getvalue() and "$" in err.getvalue()


def test_plan_dry_run_with_a_good_model_answer(
    planner_tools: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")  # usable here; a stand-in model
    monkeypatch.setitem(FACTORIES, "anthropic", lambda **_: ScriptedProvider([good_plan()]))
    out = StringIO()
    call_command(
        "plan", "record", "--provider", "anthropic", "--dry-run", stdout=out, stderr=StringIO()
    )
    assert json.loads(out.getvalue())["steps"][1]["depends_on"] == ["a"]


def test_plan_rejects_unknown_providers() -> None:
    with pytest.raises(CommandError):
        call_command("plan", "t", "--provider", "skynet", "--dry-run")


@pytest.mark.django_db(transaction=True)  # the planner reads the playbooks from its own thread
def test_a_plan_the_approval_policy_holds_is_reported_waiting_for_a_reviewer(
    settings: Any,
) -> None:
    call_command("seed_demo", stdout=StringIO())
    settings.PLANNERWEB_APPROVAL_MODE = "always"
    out = StringIO()
    call_command(
        "plan", "Back up prod.db", "--provider", "playbook", "--confirm", "never", stdout=out
    )
    assert "awaiting_approval" in out.getvalue()
    assert "waits for a reviewer's approval" in out.getvalue()
    assert ReviewItem.objects.get().kind == ReviewKind.PLAN_APPROVAL


def nothing_was_created() -> None:
    for model in (Task, Run, TranscriptEvent, LlmCall):
        assert not model.objects.exists(), model.__name__


@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
@pytest.mark.parametrize("title", ["", "   "])
def test_a_task_without_a_title_is_refused_as_the_api_refuses_it(
    title: str, extra: list[str], operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Any] = []
    monkeypatch.setattr(plan_command, "plan_task", lambda *a, **k: asked.append(a))
    api = api_as(operator).post("/tasks", {"title": title, "planner": "playbook"})
    assert api.status_code == 422
    with pytest.raises(CommandError) as caught:
        call_command("plan", title, "--provider", "playbook", *extra, stdout=StringIO())
    assert str(caught.value) == api.json()["detail"] == "A task for a planner needs a title."
    assert asked == []
    nothing_was_created()


@pytest.mark.usefixtures("no_openai_key")
@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
def test_a_planner_without_its_key_is_refused_saying_what_to_set_as_the_api_does(
    extra: list[str], operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Any] = []
    monkeypatch.setattr(plan_command, "plan_task", lambda *a, **k: asked.append(a))
    api = api_as(operator).post("/tasks", {"title": "Back up prod.db", "planner": "openai"})
    assert (api.status_code, api.json()["code"]) == (422, "planner_unavailable")
    with pytest.raises(CommandError) as caught:
        call_command("plan", "Back up prod.db", "--provider", "openai", *extra, stdout=StringIO())
    assert str(caught.value) == api.json()["detail"]
    assert "set OPENAI_API_KEY" in str(caught.value)
    assert asked == []
    nothing_was_created()


def test_the_default_planner_is_checked_too(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.PLANNERWEB_PLANNER = "anthropic"
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY_FILE", raising=False)
    with pytest.raises(CommandError, match="set ANTHROPIC_API_KEY"):
        call_command("plan", "Back up prod.db", stdout=StringIO())
    nothing_was_created()


@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
@pytest.mark.parametrize("value", ["0", "-1", "257"])
def test_max_parallel_outside_the_apis_range_is_refused_saying_the_range(
    value: str, extra: list[str], operator: User
) -> None:
    api = api_as(operator).post(
        "/tasks", {"title": "Back up prod.db", "planner": "playbook", "max_parallel": int(value)}
    )
    assert api.status_code == 422 and api.json()["fields"][0]["field"] == "max_parallel"
    with pytest.raises(CommandError, match="--max-parallel must be between 1 and 256"):
        call_command(
            "plan", "Back up prod.db", "--provider", "playbook", "--max-parallel", value, *extra
        )
    nothing_was_created()
