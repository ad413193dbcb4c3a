"""Plan reuse for model planners: an approved plan for a near-identical task, no model call."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command

from runs.lifecycle.planning import run_plan, run_submit_task
from runs.models import LlmCall, RunStatus
from runs.planning.options import PlannerOptions
from runs.planning.planner import plan_task
from runs.planning.prompt import context_for
from runs.planning.providers import FACTORIES
from runs.planning.providers.playbook.choice import choose
from runs.planning.providers.playbook.matching import Case
from runs.planning.providers.scripted import ScriptedProvider
from runs.planning.reuse import planning_tokens, reuse_plan
from runs.tools.registry import load_tool_specs

RELEASE = "Release 3.1.0 to staging, smoke test it, then release it to production"


def scripted(monkeypatch: pytest.MonkeyPatch, *script: Any) -> ScriptedProvider:
    provider = ScriptedProvider(script)
    provider.name = "openai"
    monkeypatch.setitem(FACTORIES, "openai", lambda **_: provider)
    return provider


@pytest.fixture
def demo(db: None) -> None:
    call_command("seed_demo", stdout=StringIO())


@pytest.mark.django_db
def test_a_near_identical_task_reuses_the_approved_plan_and_never_calls_the_model(
    demo: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = scripted(monkeypatch)  # no replies: a call would fail the planning
    outcome = plan_task(context_for(task=RELEASE), PlannerOptions(planner="openai"))
    assert outcome.ok, outcome.reason
    assert model.requests == []
    assert outcome.calls == []
    assert outcome.planner == "reuse:playbook:demo-deploy"
    assert outcome.reason.startswith("reused plan from playbook:demo-deploy; no model call; ")
    steps = {s["id"]: s for s in outcome.document["steps"]}
    assert steps["deploy_production"]["params"]["version"] == "3.1.0"


@pytest.mark.django_db
def test_a_different_task_goes_to_the_model(demo: None, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = {"goal": "g", "steps": [{"id": "a", "action": "noop"}]}
    model = scripted(monkeypatch, plan)
    outcome = plan_task(
        context_for(task="Release it to staging only"), PlannerOptions(planner="openai")
    )
    assert outcome.ok, outcome.reason
    assert len(model.requests) == 1, (outcome.planner, outcome.reason)
    assert outcome.reused_from == ""


@pytest.mark.django_db
def test_reuse_can_be_turned_off(
    demo: None, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.PLANNERWEB_PLAN_REUSE_MIN_SIMILARITY = 0
    model = scripted(monkeypatch, {"goal": "g", "steps": [{"id": "a", "action": "noop"}]})
    assert plan_task(context_for(task=RELEASE), PlannerOptions(planner="openai")).ok
    assert len(model.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_the_run_records_the_reuse_and_the_tokens_saved(
    demo: None, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    # A past run planned by the model spent 1200 + 300 tokens: a reuse saves about that much.
    past = run_submit_task(title="earlier", submitted_by=operator, planner="manual")
    LlmCall.objects.create(
        run=past, provider="openai", purpose="plan", tokens_in=1200, tokens_out=300
    )
    assert planning_tokens(None) == 1500
    model = scripted(monkeypatch)
    # The reused release plan deploys (a sensitive tool): no confirmation, to follow it to the end.
    run = run_submit_task(
        title=RELEASE, submitted_by=operator, planner="openai", confirm_plan="never"
    )
    assert run_plan(run_id=run.pk) == RunStatus.EXECUTING
    assert model.requests == []
    decision = run.events.get(kind="planner.decision")
    assert decision.payload["reused_from"] == "playbook:demo-deploy"
    assert decision.payload["saved_tokens"] == 1500
    assert not LlmCall.objects.filter(run=run).exists()


@pytest.mark.django_db
def test_a_reused_run_plan_is_named_by_its_run(demo: None) -> None:
    from runs.planning.providers.playbook.matching import Case
    from runs.planning.reuse import reuse_plan
    from runs.tools.registry import load_tool_specs

    document = {"goal": "Back up prod.db", "steps": [{"id": "b", "action": "backup_database"}]}
    outcome = reuse_plan(
        context_for(task="Back up prod.db"),
        tools=load_tool_specs(),
        cases=[Case("run:7", "Back up prod.db", document)],
    )
    assert outcome is not None and outcome.ok
    assert outcome.reason.startswith("reused plan from run 7; no model call")
    assert outcome.reused_from == "run:7"


@pytest.mark.django_db(transaction=True)
def test_reuse_savings_are_counted_per_run_and_in_total_on_the_page_and_the_api(
    demo: None, monkeypatch: pytest.MonkeyPatch, operator: Any, client: Any
) -> None:
    from runs.overview import reuse_savings, reuse_totals

    past = run_submit_task(title="earlier", submitted_by=operator, planner="manual")
    for tokens in (1000, 200):  # the plan call and one repair round
        LlmCall.objects.create(
            run=past, provider="openai", purpose="plan", tokens_in=tokens, tokens_out=0
        )
    scripted(monkeypatch)  # a model call would fail the planning
    reused = [
        run_submit_task(
            title=RELEASE, submitted_by=operator, planner="openai", confirm_plan="never"
        )
        for _ in range(2)
    ]
    for run in reused:
        assert run_plan(run_id=run.pk) == RunStatus.EXECUTING
    assert [(s.run_id, s.source, s.saved_tokens) for s in reuse_savings()] == [
        (reused[0].pk, "playbook:demo-deploy", 1200),
        (reused[1].pk, "playbook:demo-deploy", 1200),
    ]
    totals = reuse_totals()
    assert (totals.runs, totals.saved_calls, totals.saved_tokens) == (2, 2, 2400)
    client.force_login(operator)
    body = client.get("/api/reuse").json()
    assert (body["runs"], body["saved_calls"], body["saved_tokens"]) == (2, 2, 2400)
    assert body["reuses"][0]["reused_from"] == "playbook:demo-deploy"
    page = client.get("/overview/").content.decode()
    assert "2 runs reused an approved plan" in page and "2400" in page
    run_page = client.get(f"/runs/{reused[0].pk}/").content.decode()
    assert "Reused plan from playbook:demo-deploy: saved 1 model call and about 1200 tokens" in (
        run_page
    )


@pytest.mark.django_db
def test_a_reuse_of_a_run_counts_the_calls_that_planned_that_run(operator: Any) -> None:
    from runs.events import PlannerDecision
    from runs.overview import reuse_savings
    from runs.statemachine import NewEvent, append_events

    source = run_submit_task(title="earlier", submitted_by=operator, planner="manual")
    for purpose in ("plan", "repair", "replan"):
        LlmCall.objects.create(run=source, provider="openai", purpose=purpose, tokens_in=10)
    run = run_submit_task(title="again", submitted_by=operator, planner="manual")
    decision = PlannerDecision(
        planner="reuse:run", mode="plan", ok=True, reused_from=f"run:{source.pk}", saved_tokens=30
    )
    append_events(run.pk, [NewEvent("planner", decision)])
    (saving,) = reuse_savings(run_ids=[run.pk])
    assert (saving.source, saving.saved_calls) == (f"run {source.pk}", 2)


@pytest.mark.django_db
def test_the_same_task_reuses_its_long_plan_though_bm25_rates_it_below_the_threshold(
    demo: None, settings: Any
) -> None:
    task = "Add an email column to the users table of the production database"
    plan = yaml.safe_load(Path("runs/demo/plans/migration.yaml").read_text())
    other = {"goal": "Check", "steps": [{"id": "s", "action": "read_schema", "params": {}}]}
    cases = [Case("run:7", task, plan), Case("run:8", "Check the production database", other)]
    threshold = settings.PLANNERWEB_PLAN_REUSE_MIN_SIMILARITY
    assert choose(task, cases, [], threshold=threshold, direct=False).kind == "none"
    outcome = reuse_plan(context_for(task=task), tools=load_tool_specs(), cases=cases)
    assert outcome is not None and outcome.ok, outcome and outcome.reason
    assert outcome.reused_from == "run:7"
