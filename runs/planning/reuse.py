"""Plan reuse for model planners: an approved plan for a near-identical task, no model call.

Before a model is asked, the task is matched (``providers.playbook.choice``, stored
plans only) against the playbooks and the runs that succeeded after a reviewer
approved their plan. At or above ``PLANNERWEB_PLAN_REUSE_MIN_SIMILARITY`` the
best one is adapted (the task's values swapped in) and used, named "reused plan
from run N"; the model tokens it saves are estimated from the calls that planned
the source run (or, for a playbook, the mean of recent planning).
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.db.models import Sum

from runs.models import LlmCall
from runs.planning.attempts import PlanOutcome
from runs.planning.prompt import PlanningContext
from runs.planning.providers.playbook import adapt_case, load_cases
from runs.planning.providers.playbook.choice import Choice, choose
from runs.planning.providers.playbook.matching import Case
from runs.planning.retrieval.text import terms
from runs.tools.base import ToolSpec

_PLANNING = (LlmCall.Purpose.PLAN, LlmCall.Purpose.REPAIR)
_RECENT = 50


def planning_tokens(run_id: int | None) -> int:
    """Tokens the model spent planning run ``run_id``, or the mean over recent planned runs."""
    calls = LlmCall.objects.filter(purpose__in=_PLANNING)
    if run_id is not None:
        total = calls.filter(run_id=run_id).aggregate(t=Sum("tokens_in") + Sum("tokens_out"))["t"]
        if total:
            return int(total)
    per_run = (
        calls.exclude(run=None)
        .values("run")
        .annotate(t=Sum("tokens_in") + Sum("tokens_out"))
        .order_by("-run")[:_RECENT]
    )
    totals = [int(r["t"] or 0) for r in per_run]
    return round(sum(totals) / len(totals)) if totals else 0


def _choice(text: str, cases: list[Case], threshold: float) -> Choice:
    """The best stored plan for ``text``; a case for the same task, values aside, comes first.

    A stored case is indexed with its steps' words, so a long plan scores below the
    threshold even for its own task's words (BM25 discounts long documents): the same
    words, in any order, are the nearest a task can be, whatever the score says.
    """
    words = sorted(terms(text))
    same = [c for c in cases if sorted(terms(c.text)) == words]
    if same:
        return choose(text, same[:1], [], threshold=0.0, direct=False)
    return choose(text, cases, [], threshold=threshold, direct=False)


def reuse_plan(
    context: PlanningContext,
    *,
    tools: Mapping[str, ToolSpec],
    cases: list[Case] | None = None,
) -> PlanOutcome | None:
    """An approved plan adapted to the task, or None (reuse off, no close case, invalid)."""
    threshold = settings.PLANNERWEB_PLAN_REUSE_MIN_SIMILARITY
    if threshold <= 0 or context.mode == "iterative" or context.replan or context.iteration:
        return None
    text = f"{context.task} {context.description}".strip()
    cases = load_cases() if cases is None else cases
    choice = _choice(text, cases, threshold)
    if choice.kind != "playbook" or choice.hit is None:
        return None
    if {t for t in terms(text) if not t.startswith("<")} - choice.hit.matched:
        # Near-identical means every word of the task is the stored one's: BM25 similarity
        # alone rated "release it to staging only" a 1.00 match of the plain deploy.
        return None
    outcome = adapt_case(context, choice, text, tools=tools)
    if not outcome.ok:
        return None  # the model plans instead: a stored plan that no longer fits is no answer
    name = choice.case.name
    source_run = int(name.split(":", 1)[1]) if name.startswith("run:") else None
    where = f"run {source_run}" if source_run is not None else name
    outcome.planner = f"reuse:{name}"
    outcome.reused_from = name
    outcome.saved_tokens = planning_tokens(source_run)
    outcome.reason = f"reused plan from {where}; no model call; " + outcome.reason
    return outcome
