"""The playbook planner on the demo playbooks, the ``plan`` command, accounting and the run page block."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from runs.lifecycle.planning import run_plan, run_submit_task
from runs.models import LlmCall, Playbook, RunStatus, TranscriptEvent
from runs.planning.accounting import call_cost, llm_totals_of, run_llm_totals
from runs.planning.options import PlannerOptions
from runs.planning.planner import plan_task
from runs.planning.prompt import context_for
from runs.planning.providers import FACTORIES
from runs.planning.providers.playbook import NO_MATCH
from runs.planning.providers.playbook.matching import similarity, substitute
from runs.planning.providers.scripted import ScriptedProvider
from tests.runs.planning.conftest import good_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(db: None, settings: Any, tmp_path: Any) -> None:
    call_command("seed_demo", stdout=StringIO())


# --- playbook ------------------------------------------------------------------------
def test_seed_demo_stores_the_working_demo_plans_as_playbooks(demo: None) -> None:
    assert sorted(Playbook.objects.values_list("name", flat=True)) == [
        "demo-deploy",
        "demo-migration",
    ]


def test_a_similar_task_reuses_the_playbook_with_the_new_version(demo: None) -> None:
    outcome = plan_task(
        context_for(task="Release 3.1.0 to staging, smoke test it, then release it to production"),
        PlannerOptions(planner="playbook"),
    )
    assert outcome.ok, outcome.reason
    assert outcome.planner == "playbook:demo-deploy"
    steps = {s["id"]: s for s in outcome.document["steps"]}
    assert steps["deploy_production"]["params"]["version"] == "3.1.0"
    assert outcome.document["rollback"][0]["params"]["version"] == "3.1.0"
    assert "2.4.0 → 3.1.0" in outcome.reason
    # Confidence: the similarity, capped by the stored plan's least sure step (0.85).
    assert 0.5 < outcome.confidence <= 0.85
    assert outcome.calls == []  # no model, no calls


def test_an_unrelated_task_asks_for_a_hand_written_plan(demo: None) -> None:
    outcome = plan_task(
        context_for(task="Order pizza for the team"), PlannerOptions(planner="playbook")
    )
    assert not outcome.ok
    assert outcome.reason.startswith(NO_MATCH)
    assert outcome.document is None


@pytest.mark.django_db(transaction=True)
def test_a_playbook_run_with_no_match_escalates_with_the_reason(demo: None, operator: Any) -> None:
    run = run_submit_task(title="Water the plants", submitted_by=operator, planner="playbook")
    assert run_plan(run_id=run.pk) == RunStatus.ESCALATED
    run.refresh_from_db()
    assert run.stop_reason.startswith("no playbook matches: submit a hand-written plan")


def test_similarity_ignores_concrete_values_but_not_words() -> None:
    assert similarity("Release 2.4.0 to staging", "release 9.9.9 to staging") == pytest.approx(1.0)
    assert similarity("Release 2.4.0 to staging", "Back up prod.db") == 0.0


def test_substitution_pairs_values_by_type_and_reports_what_it_kept() -> None:
    document = {"params": {"db": "prod.db", "col": "users.email", "v": "1.0"}}
    result, report = substitute(document, "Add users.email to prod.db at 1.0", "Add orders.status")
    assert result == {"params": {"db": "prod.db", "col": "orders.status", "v": "1.0"}}
    assert report.substituted == [("users.email", "orders.status")]
    assert report.unfilled == ["1.0", "prod.db"]


# --- the plan command ------------------------------------------------------------------
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


# --- accounting ---------------------------------------------------------------------------
def test_cost_comes_from_the_price_table(settings: Any) -> None:
    settings.PLANNERWEB_LLM_PRICES = {"m": {"input": 2.0, "output": 8.0}}
    assert call_cost("m", 1_000_000, 500_000) == Decimal("6.000000")
    assert call_cost("m-2025-01-01", 1000, 0) == Decimal("0.002000")  # dated snapshot
    assert call_cost("unknown", 10, 10) is None


def test_totals_sum_every_call_of_a_run(operator: Any, settings: Any) -> None:
    run = run_submit_task(title="t", submitted_by=operator, planner="manual")
    LlmCall.objects.create(
        run=run,
        provider="openai",
        model="a",
        purpose="plan",
        tokens_in=10,
        tokens_out=5,
        latency_ms=7,
        cost=Decimal("0.5"),
    )
    LlmCall.objects.create(
        run=run,
        provider="openai",
        model="b",
        purpose="repair",
        tokens_in=1,
        tokens_out=2,
        latency_ms=3,
        ok=False,
    )
    totals = run_llm_totals(run.pk)
    assert (totals.calls, totals.failed, totals.tokens_in, totals.tokens_out) == (2, 1, 11, 7)
    assert totals.cost == Decimal("0.5") and totals.unpriced == 1
    # the run page sums the calls it lists instead of asking the database again
    assert llm_totals_of(LlmCall.objects.filter(run=run)) == totals
    assert llm_totals_of([]) == run_llm_totals(-1)  # no calls: no cost, not zero


def test_the_run_page_shows_calls_totals_and_plan_diffs(
    client: Any, operator: Any, outsider: Any, planner_tools: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(FACTORIES, "openai", lambda **_: ScriptedProvider([good_plan()]))
    run = run_submit_task(title="t", submitted_by=operator, planner="openai", model="gpt-4.1-mini")
    run_plan(run_id=run.pk)
    client.force_login(outsider)
    assert client.get(f"/runs/{run.pk}/").status_code == 403
    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "data-llm-totals" in page and "openai / gpt-4.1-mini" in page
    assert "tokens in" in page
