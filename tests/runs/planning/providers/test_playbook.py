"""The playbook planner on the demo playbooks: reuse by similarity, substitution, no match."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from reviews.models import EscalationCause, ReviewItem
from runs.lifecycle.planning import run_plan, run_submit_task
from runs.models import Playbook, RunStatus
from runs.planning.options import PlannerOptions
from runs.planning.planner import plan_task
from runs.planning.prompt import context_for
from runs.planning.providers.playbook import NO_MATCH
from runs.planning.providers.playbook.matching import substitute
from runs.planning.retrieval import Document, Index

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(db: None, settings: Any, tmp_path: Any) -> None:
    call_command("seed_demo", stdout=StringIO())


def test_seed_demo_stores_the_working_demo_plans_as_playbooks(demo: None) -> None:
    assert sorted(Playbook.objects.values_list("name", flat=True)) == [
        "demo-deploy",
        "demo-migration",
        "demo-migration-llm",
        "demo-tests-fallback",
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
    item = ReviewItem.objects.get(run=run)
    assert item.cause == "no_playbook_match"
    assert EscalationCause(item.cause).label == "No stored playbook matches the task"


def test_similarity_ignores_concrete_values_but_not_words() -> None:
    index = Index([Document("a", "Release 2.4.0 to staging"), Document("b", "Back up prod.db")])
    hits = index.search("release 9.9.9 to staging")
    assert [h.document.key for h in hits] == ["a"]
    assert hits[0].similarity > 0.9


def test_substitution_pairs_values_by_type_and_reports_what_it_kept() -> None:
    document = {"params": {"db": "prod.db", "col": "users.email", "v": "1.0"}}
    result, report = substitute(document, "Add users.email to prod.db at 1.0", "Add orders.status")
    assert result == {"params": {"db": "prod.db", "col": "orders.status", "v": "1.0"}}
    assert report.substituted == [("users.email", "orders.status")]
    assert report.unfilled == ["1.0", "prod.db"]


def test_each_parameter_filled_from_the_task_is_reported_with_how_it_changed(demo: None) -> None:
    outcome = plan_task(
        context_for(task="Release v2.4.0 to staging, smoke test it, then release it to production"),
        PlannerOptions(planner="playbook"),
    )
    assert outcome.ok, outcome.reason
    assert {
        "parameter": "deploy_staging.version",
        "task_value": "v2.4.0",
        "replaced": "2.4.0",
        "before": "2.4.0",
        "after": "v2.4.0",
    } in outcome.substitutions
    assert {s["parameter"] for s in outcome.substitutions} >= {
        "deploy_staging.version",
        "deploy_production.version",
        "rollback-1.version",
    }


@pytest.mark.django_db(transaction=True)
def test_the_run_page_shows_the_parameters_the_playbook_filled_from_the_task(
    demo: None, operator: Any
) -> None:
    run = run_submit_task(
        title="Release v2.4.0 to staging, smoke test it, then release it to production",
        submitted_by=operator,
        planner="playbook",
    )
    run_plan(run_id=run.pk)
    decision = run.events.get(kind="planner.decision").payload
    assert decision["substitutions"][0]["task_value"] == "v2.4.0"
    client = Client()
    client.force_login(operator)
    page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "Parameters from the task" in page
    assert (
        "<td><code>deploy_staging.version</code></td>\n"
        "              <td><code>v2.4.0</code></td>\n"
        "              <td><code>2.4.0</code> → <code>v2.4.0</code>"
    ) in page
