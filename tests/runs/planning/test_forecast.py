"""Forecasts on seeded history: critical path over median and p90 step durations, and cost."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from reviews.models import ApprovalPolicy, ReviewItem
from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import LlmCall, Run, Step, Tool
from runs.planning.forecast import critical_path, percentile, plan_forecast
from tests.runs.api.conftest import api_as

pytestmark = pytest.mark.django_db(transaction=True)

PLAN = {
    "goal": "Forecast me",
    "steps": [
        {"id": "x", "action": "slow"},
        {"id": "z", "action": "slow"},
        {"id": "y", "action": "quick", "depends_on": ["x"]},
        {"id": "w", "action": "new_tool", "depends_on": ["y", "z"]},
    ],
}


def test_the_critical_path_is_the_heaviest_chain_of_dependencies() -> None:
    steps = [("a", "t1", []), ("b", "t2", ["a"]), ("c", "t1", []), ("d", "t3", ["b", "c"])]
    assert critical_path(steps, {"t1": 2.0, "t2": 5.0, "t3": 1.0}) == (8.0, ["a", "b", "d"])
    assert critical_path([], {}) == (0.0, [])
    assert percentile([1, 2, 3, 4, 10], 0.9) == pytest.approx(7.6)
    assert percentile([4], 0.9) == 4


@pytest.fixture
def tools(db: None) -> None:
    for name in ("slow", "quick", "new_tool"):
        Tool.objects.create(
            name=name,
            kind="python",
            config={"callable": "runs.tools.builtin.noop"},
            parameters_schema={"type": "object"},
        )


def seed_history(operator: User, tool: str, seconds: list[float]) -> Run:
    """A finished run of ``tool`` steps whose recorded durations are ``seconds``."""
    steps = [{"id": f"s{i}", "action": tool} for i in range(len(seconds))]
    run = run_submit_plan(
        title="history", document={"goal": "h", "steps": steps}, submitted_by=operator
    )
    assert run_execute(run_id=run.pk) == "succeeded"
    start = timezone.now() - timedelta(hours=1)
    for i, took in enumerate(seconds):
        Step.objects.filter(run=run, key=f"s{i}").update(
            started_at=start, finished_at=start + timedelta(seconds=took)
        )
    return run


@pytest.fixture
def history(tools: None, operator: User) -> Run:
    seed_history(operator, "slow", [1, 2, 3, 4, 10])
    past = seed_history(operator, "quick", [5])
    LlmCall.objects.create(run=past, provider="openai", purpose="replan", cost=Decimal("0.04"))
    return past


@pytest.fixture
def held(history: Run, operator: User) -> ReviewItem:
    ApprovalPolicy.objects.create(mode="always", confidence_threshold=0.6)
    run = run_submit_plan(title="forecast", document=PLAN, submitted_by=operator)
    LlmCall.objects.create(run=run, provider="openai", purpose="plan", cost=Decimal("0.01"))
    return ReviewItem.objects.get(run=run)


def test_the_forecast_walks_the_critical_path_over_each_tools_history(held: ReviewItem) -> None:
    assert held.plan is not None
    forecast = plan_forecast(held.plan)
    assert forecast.median_seconds == pytest.approx(3 + 5)  # x (slow) → y (quick) → w (unknown)
    assert forecast.p90_seconds == pytest.approx(7.6 + 5)
    assert forecast.critical_path == ["x", "y", "w"]
    assert forecast.without_history == ["new_tool"]
    assert forecast.samples == 6
    # 0.01 spent planning, plus 0.04 of replanning over the 2 finished runs.
    assert forecast.spent_cost == Decimal("0.01")
    assert forecast.expected_cost == Decimal("0.03")


def test_the_approval_page_shows_the_forecast(held: ReviewItem, reviewer: User) -> None:
    client = Client()
    client.force_login(reviewer)
    page = client.get(reverse("reviews:item", args=[held.pk])).content.decode()
    assert "median 8.0 s, p90 12.6 s" in page
    assert "critical path x → y → w; from 6 past steps" in page
    assert "new_tool <small" in page
    assert "$0.030000" in page


def test_the_api_gives_the_forecast_then_the_actual(
    held: ReviewItem, reviewer: User, operator: User
) -> None:
    api = api_as(operator)
    before = api.get(f"/runs/{held.run_id}/forecast").json()
    assert before["median_seconds"] == 8.0 and before["actual_seconds"] is None
    assert before["expected_cost"] == "0.030000"
    from runs.lifecycle.reviews import review_approve

    review_approve(item_id=held.pk, user=reviewer, checklist=list(range(len(held.checklist))))
    assert run_execute(run_id=held.run_id) == "succeeded"
    after = api.get(f"/runs/{held.run_id}/forecast").json()
    assert after["median_seconds"] == 8.0  # the history before the run started
    assert after["actual_seconds"] is not None and after["actual_seconds"] >= 0
    client = Client()
    client.force_login(operator)
    page = client.get(reverse("runs:detail", args=[held.run_id])).content.decode()
    assert reverse("runs:forecast", args=[held.run_id]) in page  # loaded after the page
    block = client.get(reverse("runs:forecast", args=[held.run_id])).content.decode()
    assert "median 8.0 s, p90 12.6 s" in block and "data-forecast-actual" in block


def test_a_run_with_no_plan_or_no_such_run_is_refused(operator: User, tools: Any) -> None:
    api = api_as(operator)
    assert api.get("/runs/424242/forecast").status_code == 404
    from runs.lifecycle.planning import run_submit_task

    run = run_submit_task(title="no plan yet", submitted_by=operator, planner="manual")
    response = api.get(f"/runs/{run.pk}/forecast")
    assert response.status_code == 409
    assert response.json()["code"] == "no_plan"
    assert api_as(None).get(f"/runs/{run.pk}/forecast").status_code == 401
    client = Client()
    client.force_login(operator)
    assert client.get(reverse("runs:forecast", args=[run.pk])).content.strip() == b""
    assert client.get(reverse("runs:forecast", args=[424242])).status_code == 404
