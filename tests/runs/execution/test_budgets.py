"""Supervisor budgets: a breach stops the run, names the budget and figures, and escalates it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from reviews.models import ReviewItem
from runs.execution.budgets import Budgets, Usage, budget_breach, budgets_for
from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import LlmCall, Run, Step, Task

pytestmark = pytest.mark.django_db(transaction=True)


def chain(key: str, n: int, *, rollback: bool = False) -> dict[str, Any]:
    steps = [
        {
            "id": f"s{i}",
            "action": "record",
            "params": {"key": key, "label": f"s{i}"},
            "depends_on": [f"s{i - 1}"] if i else [],
        }
        for i in range(n)
    ]
    doc: dict[str, Any] = {"steps": steps}
    if rollback:
        doc["rollback"] = [{"action": "record", "params": {"key": key, "label": "undo"}}]
    return doc


@pytest.fixture
def submit(fast_settings: Any, toolset: None) -> Callable[..., Run]:
    def make(document: Any, **budgets: Any) -> Run:
        run = run_submit_plan(title="budgeted", document=document, submitted_by=None)
        Task.objects.filter(pk=run.task_id).update(**budgets)
        return run

    return make


def finish(run: Run) -> Run:
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_the_step_budget_from_settings_stops_the_run_before_the_step_that_breaks_it(
    submit: Callable[..., Run], settings: Any, key: str, calls: list[str]
) -> None:
    settings.PLANNERWEB_BUDGET_MAX_STEPS = 2
    run = finish(submit(chain(key, 4)))
    assert calls == ["s0", "s1"]
    assert run.status == "escalated"
    assert run.stop_reason == "budget max_steps exceeded: 3 steps > 2"
    assert run.lease_owner == "" and run.finished_at is not None
    item = ReviewItem.objects.get(run=run)
    assert (item.kind, item.cause, item.status) == ("escalation", "budget_breached", "open")
    assert item.context["budgets"]["max_steps"] == 2
    assert [s["id"] for s in item.context["succeeded"]] == ["s0", "s1"]
    assert set(
        Step.objects.filter(run=run, key__in=["s2", "s3"]).values_list("status", flat=True)
    ) == {"skipped"}


def test_a_task_override_beats_the_setting(
    submit: Callable[..., Run], settings: Any, key: str, calls: list[str]
) -> None:
    settings.PLANNERWEB_BUDGET_MAX_STEPS = 2
    run = finish(submit(chain(key, 3), budget_max_steps=5))
    assert run.status == "succeeded" and calls == ["s0", "s1", "s2"]


def test_a_breach_rolls_back_first_then_escalates(
    submit: Callable[..., Run], key: str, calls: list[str]
) -> None:
    run = finish(submit(chain(key, 3, rollback=True), budget_max_steps=1))
    assert calls == ["s0", "undo"]
    assert run.status == "escalated"
    assert run.stop_reason.startswith("budget max_steps exceeded: 2 steps > 1; rolled back")
    assert Step.objects.get(run=run, key="s0").status == "rolled_back"
    assert ReviewItem.objects.get(run=run).cause == "budget_breached"


def test_the_cost_budget_names_the_figures_in_dollars(
    submit: Callable[..., Run], key: str, calls: list[str]
) -> None:
    run = submit(chain(key, 2), budget_max_cost=Decimal("0.01"))
    LlmCall.objects.create(
        run=run, provider="openai", model="m", purpose="plan", tokens_in=10, cost=Decimal("0.0123")
    )
    run = finish(run)
    assert calls == []
    assert (run.status, run.stop_reason) == (
        "escalated",
        "budget max_cost exceeded: $0.0123 > $0.0100",
    )


def test_the_token_budget_counts_every_model_call_of_the_run(
    submit: Callable[..., Run], key: str, calls: list[str]
) -> None:
    run = submit(chain(key, 2), budget_max_tokens=1000)
    for _ in range(2):
        LlmCall.objects.create(
            run=run, provider="openai", model="m", purpose="plan", tokens_in=400, tokens_out=150
        )
    run = finish(run)
    assert calls == [] and run.stop_reason == "budget max_tokens exceeded: 1100 tokens > 1000"


def test_the_wall_time_budget_counts_from_the_runs_start(
    submit: Callable[..., Run], key: str, calls: list[str]
) -> None:
    run = submit(chain(key, 2), budget_max_wall_seconds=10)
    Run.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(seconds=100))
    run = finish(run)
    assert calls == [] and run.status == "escalated"
    assert run.stop_reason.startswith("budget max_wall_seconds exceeded: 10")
    assert run.stop_reason.endswith("s > 10s")


def test_zero_or_null_means_no_limit(settings: Any) -> None:
    settings.PLANNERWEB_BUDGET_MAX_STEPS = 0
    task = Task(title="t", budget_max_tokens=None, budget_max_cost=None)
    assert not budgets_for(task)
    assert budget_breach(Budgets(), Usage(steps=10**6, tokens=10**9), timezone.now()) is None
