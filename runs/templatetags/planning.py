"""``{% llm_usage run %}``: the run page's planner block (model calls, totals, plan diffs).

An inclusion tag rather than view context so the run page needs one line to
show it, whoever owns the view; it reads through the planning selectors.
"""

from __future__ import annotations

from typing import Any

from django import template

from runs.models import LlmCall, Plan, Run
from runs.planning.accounting import run_llm_totals

register = template.Library()


@register.inclusion_tag("runs/_llm_usage.html")
def llm_usage(run: Run) -> dict[str, Any]:
    return {
        "run": run,
        "totals": run_llm_totals(run.pk),
        "calls": list(LlmCall.objects.filter(run=run).order_by("id")),
        "diffs": list(
            Plan.objects.filter(run=run, diff__isnull=False)
            .select_related("parent")
            .order_by("version")
        ),
        "task": run.task,
    }
