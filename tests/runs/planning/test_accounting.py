"""Model-call accounting: cost from the price table, totals per run, and the run page block."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from runs.lifecycle.planning import run_plan, run_submit_task
from runs.models import LlmCall
from runs.planning.accounting import call_cost, llm_totals_of, run_llm_totals
from runs.planning.providers import FACTORIES
from runs.planning.providers.scripted import ScriptedProvider
from tests.runs.planning.conftest import good_plan

pytestmark = pytest.mark.django_db


def test_cost_comes_from_the_price_table(settings: Any) -> None:
    settings.PLANNERWEB_LLM_PRICES = {"m": {"input": 2.0, "output": 8.0}}
    assert call_cost("m", 1_000_000, 500_000) == Decimal("6.000000")
    assert call_cost("m-2025-01-01", 1000, 0) == Decimal("0.002000")  # dated snapshot
    assert call_cost("unknown", 10, 10, provider="openai") is None


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


@pytest.mark.django_db(transaction=True)  # planning stores each call from a thread of its own
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
    call = LlmCall.objects.filter(run=run).first()  # the cost says which price it used
    assert call is not None
    assert call.price_source.startswith("genai-prices ") and call.cost is not None
    assert f"(prices: {call.price_source})" in page
