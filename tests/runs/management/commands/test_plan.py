"""manage.py plan: dry runs from a playbook and from a model, and unknown providers."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from reviews.models import ReviewItem, ReviewKind
from runs.models import LlmCall, TranscriptEvent
from runs.planning.providers import FACTORIES
from runs.planning.providers.scripted import ScriptedProvider
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
