"""``{% llm_usage run %}`` (model calls) and ``{% llm_totals run %}`` (the one-line totals).

An inclusion tag rather than view context so the run page needs one line to
show it, whoever owns the view; it reads through the planning selectors unless
the view passes what it loaded already (the run page does: one query for both).
"""

from __future__ import annotations

from typing import Any

from django import template

from runs.models import LlmCall, Plan, Run
from runs.overview import reuse_savings
from runs.planning.accounting import LlmTotals, llm_totals_of, run_llm_totals
from runs.selectors import run_llm_calls, run_substitutions

register = template.Library()


@register.inclusion_tag("runs/_llm_usage.html")
def llm_usage(
    run: Run, calls: list[LlmCall] | None = None, totals: LlmTotals | None = None
) -> dict[str, Any]:
    """The run's model calls and their totals; a view that loaded them passes them (no query)."""
    if calls is None:
        calls = run_llm_calls(run.pk)
    return {
        "run": run,
        "totals": totals if totals is not None else llm_totals_of(calls),
        "calls": calls,
        "task": run.task,
        "substitutions": run_substitutions(run) if run.task.planner else [],
    }


@register.inclusion_tag("runs/_llm_totals.html")
def llm_totals(run: Run, totals: LlmTotals | None = None) -> dict[str, Any]:
    """Tokens and cost so far, at the top of the live section (re-rendered on each plan version)."""
    if totals is None and run.task.planner:
        totals = run_llm_totals(run.pk)
    reused = reuse_savings(run_ids=[run.pk]) if run.task.planner else []
    return {"task": run.task, "totals": totals, "reused": reused[-1] if reused else None}


@register.inclusion_tag("runs/_plan_diff.html")
def plan_diff(plan: Plan) -> dict[str, Any]:
    """A plan version's structured diff against its parent: added, removed, changed (from → to)."""
    diff = plan.diff or {}
    changed = [
        {
            "id": c.get("id"),
            "fields": [
                {
                    "name": name,
                    "from": _short((c.get("values") or {}).get(name, {}).get("from")),
                    "to": _short((c.get("values") or {}).get(name, {}).get("to")),
                }
                for name in c.get("fields", [])
            ],
        }
        for c in diff.get("changed", [])
    ]
    return {"plan": plan, "diff": diff, "changed": changed}


def _short(value: Any) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False, default=str) if value is not None else ""
    return text if len(text) <= 120 else text[:119] + "…"
