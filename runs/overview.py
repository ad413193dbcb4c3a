"""Reads for the overview page: a run's shape and its supervision, day by day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from reviews.models import ReviewItem, ReviewKind
from runs.models import Run, Step, StepStatus


@dataclass(frozen=True)
class Series:
    """One figure per day, oldest first; None on a day with nothing to measure."""

    name: str
    unit: str
    days: list[date]
    values: list[float | None]
    explain: str

    @property
    def latest(self) -> float | None:
        return next((v for v in reversed(self.values) if v is not None), None)


def _per_day(rows: QuerySet[Any], field: str, days: list[date], **counts: Any) -> dict[date, Any]:
    """``counts`` aggregated per day of ``field`` (a datetime), for the ``days`` given."""
    grouped = (
        rows.filter(**{f"{field}__date__gte": days[0]})
        .annotate(day=TruncDate(field))
        .values("day")
        .order_by("day")
        .annotate(**counts)
    )
    return {row["day"]: row for row in grouped}


def _ratio(rows: dict[date, Any], days: list[date], top: str, bottom: str) -> list[float | None]:
    out: list[float | None] = []
    for day in days:
        row = rows.get(day)
        out.append(row[top] / row[bottom] if row and row.get(bottom) else None)
    return out


def overview_series(*, days: int = 30) -> list[Series]:
    """Steps per task, tool success, evaluator disagreement and escalations, per day."""
    today = timezone.now().date()
    span = [today - timedelta(days=days - 1 - i) for i in range(days)]
    runs = _per_day(
        Run.objects.all(),
        "created_at",
        span,
        runs=Count("pk", distinct=True),
        steps=Count(
            "steps", filter=Q(steps__phase=Step.Phase.MAIN, steps__started_at__isnull=False)
        ),
    )
    finished = Step.objects.filter(phase=Step.Phase.MAIN, finished_at__isnull=False)
    steps = _per_day(
        finished,
        "finished_at",
        span,
        done=Count("pk", filter=Q(status__in=[StepStatus.SUCCEEDED, StepStatus.FAILED])),
        ok=Count("pk", filter=Q(status=StepStatus.SUCCEEDED)),
        judged=Count("pk", filter=~Q(verdict="")),
        disagreed=Count("pk", filter=Q(verdict__in=["fail", "warn"])),
    )
    escalations = _per_day(
        ReviewItem.objects.filter(kind=ReviewKind.ESCALATION), "created_at", span, n=Count("pk")
    )
    for day, row in runs.items():
        if day in escalations:
            escalations[day]["runs"] = row["runs"]
    return [
        Series(
            "Steps per task",
            "steps",
            span,
            _ratio(runs, span, "steps", "runs"),
            "main steps started per run created that day (replanned copies counted per version)",
        ),
        Series(
            "Tool success rate",
            "%",
            span,
            _percent(_ratio(steps, span, "ok", "done")),
            "steps that succeeded among those that finished that day",
        ),
        Series(
            "Evaluator disagreement",
            "%",
            span,
            _percent(_ratio(steps, span, "disagreed", "judged")),
            "judged steps whose tool returned but the evaluator said warn or fail",
        ),
        Series(
            "Escalations per run",
            "per run",
            span,
            _ratio(escalations, span, "n", "runs"),
            "escalations opened per run created that day",
        ),
    ]


def _percent(values: list[float | None]) -> list[float | None]:
    return [v * 100 if v is not None else None for v in values]
