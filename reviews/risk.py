"""An item's risk: facts about the plan under review, stored on the item, and the score they make.

The facts are worked out from the plan's main steps once, when the item opens and
whenever its plan changes (a reviewer's saved edit; a replan opens a new item), so
the queue sorts and filters by indexed columns instead of reading every plan's
steps. The score also counts a step confidence below the low-confidence threshold
(the global approval policy's): when that threshold changes, ``risk_rescore``
rewrites the stored scores in one update (the admin does it on saving or deleting
the global policy; ``manage.py review_rescore`` after changing
``PLANNERWEB_GATE_CONFIDENCE`` with no global policy row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Case, Max, Min, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from reviews.models import ReviewItem
from runs.models import Step

# Points per fact; the score's levels are ``reviews.selectors.RISK_LEVELS``.
SENSITIVE_POINTS = 2
PRODUCTION_POINTS = 2
LOW_CONFIDENCE_POINTS = 1
# Step params that name where a step acts, and the value that makes it risky.
ENVIRONMENT_PARAMS = ("env", "environment", "target")
PRODUCTION = "production"
MAIN_PHASE = "main"
BACKFILL_BATCH = 2000  # plans whose steps one query of the backfill reads


@dataclass(frozen=True)
class RiskFacts:
    """What makes a plan risky: a sensitive tool, a production target, its lowest confidence."""

    sensitive: bool = False
    production: bool = False
    min_confidence: float | None = None

    def score(self, low_confidence: float) -> int:
        low = self.min_confidence is not None and self.min_confidence < low_confidence
        return (
            SENSITIVE_POINTS * self.sensitive
            + PRODUCTION_POINTS * self.production
            + LOW_CONFIDENCE_POINTS * low
        )

    def fields(self, low_confidence: float) -> dict[str, Any]:
        """The item's stored risk columns for these facts."""
        return {
            "risk_sensitive": self.sensitive,
            "risk_production": self.production,
            "risk_min_confidence": self.min_confidence,
            "risk_score": self.score(low_confidence),
        }


def _flag(condition: Q) -> Max:
    return Max(Case(When(condition, then=Value(1)), default=Value(0)))


def plan_risk_facts(steps: QuerySet[Any]) -> dict[int, RiskFacts]:
    """The facts of every plan ``steps`` belong to, by plan id, in one grouped query.

    ``steps`` is any queryset of steps (the migration passes its historical model's),
    so the item's page, its opening and the backfill all judge a plan alike.
    """
    production = Q()
    for name in ENVIRONMENT_PARAMS:
        production |= Q(**{f"params__{name}": PRODUCTION})
    rows = (
        steps.filter(phase=MAIN_PHASE)
        .order_by()
        .values("plan_id")
        .annotate(s=_flag(Q(tool__sensitive=True)), p=_flag(production), low=Min("confidence"))
    )
    return {row["plan_id"]: RiskFacts(bool(row["s"]), bool(row["p"]), row["low"]) for row in rows}


def plan_risk(plan_id: int | None) -> RiskFacts:
    """One plan's facts (none for no plan)."""
    if plan_id is None:
        return RiskFacts()
    return plan_risk_facts(Step.objects.filter(plan_id=plan_id)).get(plan_id, RiskFacts())


def score_expression(low_confidence: float) -> Any:
    """``RiskFacts.score`` over the stored columns, for an update of many items at once."""

    def points(condition: Q, value: int) -> Case:
        return Case(When(condition, then=Value(value)), default=Value(0))

    return (
        points(Q(risk_sensitive=True), SENSITIVE_POINTS)
        + points(Q(risk_production=True), PRODUCTION_POINTS)
        + points(Q(risk_min_confidence__lt=low_confidence), LOW_CONFIDENCE_POINTS)
    )


@dataclass(frozen=True)
class Rescored:
    """A rescore's outcome: the items checked (every item, open or decided), and how many
    of their scores the threshold changed."""

    checked: int
    changed: int


@transaction.atomic
def risk_rescore(*, low_confidence: float) -> Rescored:
    """Rewrite every stored score whose low-confidence point the new threshold changes."""
    expected = score_expression(low_confidence)
    # Only an item with a step confidence can score differently; the rest are right as stored.
    stale = ReviewItem.objects.filter(risk_min_confidence__isnull=False).exclude(
        risk_score=expected
    )
    changed = stale.update(risk_score=expected)
    return Rescored(checked=ReviewItem.objects.count(), changed=changed)


def stored_facts_backfill(
    items: QuerySet[Any], steps: QuerySet[Any], runs: QuerySet[Any], *, low_confidence: float
) -> int:
    """Store the risk facts and submitter of ``items`` (the migration's and the benchmark's fill).

    ``items``, ``steps`` and ``runs`` may be querysets of historical models. Facts are
    worked out by ``plan_risk_facts`` a batch of plans at a time; items with the same
    facts get them in one update.
    """
    submitter = runs.filter(pk=OuterRef("run_id")).values("task__submitted_by__username")[:1]
    items.update(submitter_name=Coalesce(Subquery(submitter), Value("")))
    plan_ids = sorted(set(items.exclude(plan_id=None).values_list("plan_id", flat=True)))
    updated = 0
    for start in range(0, len(plan_ids), BACKFILL_BATCH):
        batch = plan_ids[start : start + BACKFILL_BATCH]
        by_facts: dict[RiskFacts, list[int]] = {}
        for plan_id, facts in plan_risk_facts(steps.filter(plan_id__in=batch)).items():
            by_facts.setdefault(facts, []).append(plan_id)
        for facts, ids in by_facts.items():
            updated += items.filter(plan_id__in=ids).update(**facts.fields(low_confidence))
    return updated
