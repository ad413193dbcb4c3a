"""/metrics: the Prometheus text format parsed with prometheus-client's parser, figures matching
the database; who may scrape it; two worker processes on PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from reviews.models import ReviewItem
from runs.lifecycle.submit import run_submit_plan
from runs.models import LlmCall, Run, Step, Tool
from runs.statemachine import RUN_TERMINAL
from tests.runs.processes import child_env, db_worker, processes, wait_for


def scrape(client: Client | None = None, **headers: str) -> dict[str, list[Sample]]:
    response = (client or Client()).get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    families = text_string_to_metric_families(response.content.decode())
    return {f.name: f.samples for f in families}


def values(
    samples: list[Sample], suffix: str = "", by: tuple[str, ...] = (), **labels: str
) -> dict[tuple[str, ...], float]:
    """Sample values keyed by the values of the labels ``by`` (``labels`` narrows)."""
    return {
        tuple(s.labels[k] for k in by): s.value
        for s in samples
        if s.name.endswith(suffix) and all(s.labels.get(k) == v for k, v in labels.items())
    }


@pytest.mark.django_db(transaction=True)
def test_run_step_and_model_figures_match_the_database(
    execute: Callable[..., Run], key: str
) -> None:
    execute(
        {
            "steps": [
                {
                    "id": "a",
                    "action": "flaky",
                    "params": {"key": key, "label": "a", "fail_times": 1},
                }
            ]
        }
    )
    failed = execute(
        {"steps": [{"id": "f", "action": "fail", "params": {"key": key, "label": "f"}}]}
    )
    LlmCall.objects.create(
        run=failed,
        provider="openai",
        model="gpt-4.1-mini",
        purpose="plan",
        tokens_in=100,
        tokens_out=20,
        cost=Decimal("0.5"),
    )
    LlmCall.objects.create(
        run=failed,
        provider="openai",
        model="gpt-4.1-mini",
        purpose="repair",
        tokens_in=50,
        tokens_out=10,
        cost=Decimal("0.25"),
    )
    ReviewItem.objects.create(run=failed, kind="escalation", cause="evaluator_fail")
    metrics = scrape()
    finished = Counter(Run.objects.filter(status__in=RUN_TERMINAL).values_list("status", flat=True))
    assert values(metrics["plannerweb_runs_finished"], "_total", ("status",)) == {
        (status,): float(n) for status, n in finished.items()
    }
    assert values(metrics["plannerweb_run_duration_seconds"], "_count", ("status",)) == {
        (status,): float(n) for status, n in finished.items()
    }
    steps = values(metrics["plannerweb_step_duration_seconds"], "_count", ("tool", "status"))
    assert steps == {("flaky", "succeeded"): 1.0, ("fail", "failed"): 1.0}
    buckets = values(
        metrics["plannerweb_step_duration_seconds"],
        "_bucket",
        ("tool", "status", "le"),
        tool="flaky",
    )
    assert buckets[("flaky", "succeeded", "+Inf")] == 1.0
    models = metrics["plannerweb_model_tokens"]
    assert values(models, "_total", ("provider", "model", "direction"), direction="input") == {
        ("openai", "gpt-4.1-mini", "input"): 150
    }
    assert values(metrics["plannerweb_model_cost_usd"], "_total", ("provider", "model")) == {
        ("openai", "gpt-4.1-mini"): 0.75
    }
    calls = values(
        metrics["plannerweb_model_calls"],
        "_total",
        ("provider", "model", "purpose"),
        purpose="repair",
    )
    assert calls == {("openai", "gpt-4.1-mini", "repair"): 1.0}
    assert values(metrics["plannerweb_escalations"], "_total", ("cause",)) == {
        ("evaluator_fail",): 1.0
    }
    backlog = values(metrics["plannerweb_review_backlog"], "", ("kind",))
    assert backlog[("escalation",)] == 1.0 and backlog[("plan_approval",)] == 0.0
    assert values(metrics["plannerweb_active_leases"]) == {(): 0.0}


@pytest.mark.django_db
def test_metrics_need_an_allowed_address_or_the_token(settings: Any) -> None:
    settings.PLANNERWEB_METRICS_ALLOW = ["10.0.0.0/8"]
    settings.PLANNERWEB_METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 403  # the test client is 127.0.0.1
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    settings.PLANNERWEB_METRICS_TOKEN = "s3cret-scrape"
    refused = Client().get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    wrong = Client().get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert "plannerweb_runs" in scrape(Authorization="Bearer s3cret-scrape")
    assert Client(REMOTE_ADDR="10.1.2.3").post("/metrics").status_code == 405


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_and_the_scrape_agree_with_the_database(tmp_path: Path) -> None:
    Tool.objects.create(
        name="record",
        kind=Tool.Kind.PYTHON,
        config={"callable": "tests.runs.toolbox.record"},
        parameters_schema={"type": "object"},
    )
    Tool.objects.create(
        name="fail",
        kind=Tool.Kind.PYTHON,
        config={"callable": "tests.runs.toolbox.fail"},
        parameters_schema={"type": "object"},
    )

    def plan(n: int) -> dict[str, Any]:
        action = "fail" if n % 3 == 0 else "record"
        return {"steps": [{"id": "s", "action": action, "params": {"key": "k", "label": f"{n}"}}]}

    logs = tmp_path / "logs"
    with processes(db_worker("w1"), db_worker("w2"), env=child_env(tmp_path), logs=logs):
        ids = [
            run_submit_plan(title=f"r{n}", document=plan(n), submitted_by=None).pk
            for n in range(12)
        ]
        wait_for(
            lambda: Run.objects.filter(pk__in=ids, status__in=RUN_TERMINAL).count() == 12,
            timeout=120,
            what="12 runs to end",
            logs=logs,
        )
    metrics = scrape()
    assert values(metrics["plannerweb_runs_finished"], "_total", ("status",)) == {
        ("succeeded",): 8.0,
        ("failed",): 4.0,
    }
    by_tool = values(metrics["plannerweb_step_duration_seconds"], "_count", ("tool", "status"))
    assert by_tool == {
        ("record", "succeeded"): float(Step.objects.filter(tool_name="record").count()),
        ("fail", "failed"): 4.0,
    }
    assert values(metrics["plannerweb_queue_depth"], "", ("queue",)) in ({}, {("default",): 0.0})
    pickups = values(metrics["plannerweb_pickup_latency_seconds"], "_count", ("queue",))
    assert pickups[("default",)] >= 12
