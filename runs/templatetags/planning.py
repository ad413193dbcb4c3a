"""``{% llm_usage run %}`` (model calls) and ``{% llm_totals run %}`` (the one-line totals).

An inclusion tag rather than view context so the run page needs one line to
show it, whoever owns the view; it reads through the planning selectors unless
the view passes what it loaded already (the run page does: one query for both).
"""

from __future__ import annotations

import json
from typing import Any

from django import template

from runs.models import LlmCall, Plan, Run
from runs.overview import reuse_saving_of, reuse_savings
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
    reused = None
    if run.task.planner and hasattr(run, "planner_decision"):  # the run page's row has it
        reused = reuse_saving_of(run.pk, run.planner_decision)
    elif run.task.planner:
        savings = reuse_savings(run_ids=[run.pk])
        reused = savings[-1] if savings else None
    return {"task": run.task, "totals": totals, "reused": reused}


# A diff on a page (a saved version's, or the live preview that follows the reviewer's
# typing) shows this many changed lines at most and counts the rest.
DIFF_LINES = 50


@register.inclusion_tag("runs/_plan_diff.html")
def plan_diff(plan: Plan) -> dict[str, Any]:
    """A plan version's diff against its parent: steps added, removed, changed field by field."""
    parent = plan.parent.version if plan.parent_id and plan.parent is not None else None
    return diff_context(
        plan.diff,
        mark=str(plan.version),
        against=parent,
        first=not plan.parent_id,
        limit=DIFF_LINES,
    )


@register.inclusion_tag("runs/_plan_diff.html")
def edit_diff(diff: dict[str, Any] | None, against: int | None) -> dict[str, Any]:
    """A reviewer's edit against the version under review, before it is saved (the preview)."""
    return diff_context(diff, mark="preview", against=against, first=False, limit=DIFF_LINES)


def diff_context(
    diff: dict[str, Any] | None,
    *,
    mark: str,
    against: int | None,
    first: bool,
    limit: int | None = None,
) -> dict[str, Any]:
    """What ``runs/_plan_diff.html`` shows of a ``plan_document_diff``: values cut short.

    With a ``limit``, only that many changed lines are shown (plan-level changes, added
    and removed steps, then changed fields, in that order) and ``more`` counts the rest.
    """
    diff = diff if isinstance(diff, dict) else {}
    changed = [
        {
            "id": c.get("id"),
            "changes": [
                {
                    "path": x.get("path"),
                    "op": x.get("op"),
                    "from": _short(x.get("from")),
                    "to": _short(x.get("to")),
                }
                for x in c.get("changes") or _legacy_changes(c)
            ],
        }
        for c in diff.get("changed", [])
    ]
    plan_changes = [
        {
            "path": x.get("path"),
            "op": x.get("op"),
            "from": _short(x.get("from")),
            "to": _short(x.get("to")),
        }
        for x in diff.get("plan_changes", [])
    ]
    same = bool(diff) and not (diff.get("added") or diff.get("removed") or changed or plan_changes)
    added, removed, kept = (
        diff.get("added") or [],
        diff.get("removed") or [],
        diff.get("kept") or [],
    )
    more = 0
    if limit is not None:
        left = limit

        def cut(items: list[Any]) -> list[Any]:
            nonlocal left, more
            shown = items[: max(left, 0)]
            left -= len(shown)
            more += len(items) - len(shown)
            return shown

        plan_changes, added, removed = cut(plan_changes), cut(added), cut(removed)
        changed = [
            c for c in ({**c, "changes": cut(c["changes"])} for c in changed) if c["changes"]
        ]
        kept_more = max(len(kept) - limit, 0)
        kept = [*kept[:limit], f"… and {kept_more} more"] if kept_more else kept
    return {
        "diff": diff,
        "added": added,
        "removed": removed,
        "kept": kept,
        "more": more,
        "changed": changed,
        "plan_changes": plan_changes,
        "mark": mark,
        "against": against,
        "first": first,
        "same": same,
    }


def _legacy_changes(change: dict[str, Any]) -> list[dict[str, Any]]:
    # Diffs stored before field-level changes were recorded: one change per top-level field.
    values = change.get("values") or {}
    return [
        {"path": name, "op": "changed", **(values.get(name) or {})}
        for name in change.get("fields", [])
    ]


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if value is not None else ""
    return text if len(text) <= 120 else text[:119] + "…"
