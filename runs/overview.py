"""Reads for the overview page: a run's shape and its supervision, day by day."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from reviews.models import ReviewItem, ReviewKind
from runs.models import LlmCall, Run, Step, StepStatus, TranscriptEvent


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


@dataclass(frozen=True)
class ReuseSaving:
    """A run planned by reusing an approved plan: where from, and the model work it saved."""

    run_id: int
    reused_from: str
    saved_calls: int
    saved_tokens: int

    @property
    def source(self) -> str:
        """'run N' or the playbook's name, as the run page says it."""
        kind, _, name = self.reused_from.partition(":")
        return f"run {name}" if kind == "run" else self.reused_from


@dataclass(frozen=True)
class ReuseTotals:
    runs: int
    saved_calls: int
    saved_tokens: int


def reuse_savings(*, run_ids: list[int] | None = None) -> list[ReuseSaving]:
    """Runs whose plan was reused instead of asking a model, with the calls and tokens saved.

    Calls saved: the model calls (plan and repair rounds) that planned the source run,
    at least one; tokens saved: the planner's estimate recorded with the decision.
    """
    events = TranscriptEvent.objects.filter(kind="planner.decision").exclude(
        payload__reused_from=""
    )
    if run_ids is not None:
        events = events.filter(run_id__in=run_ids)
    return _savings(events.order_by("run_id", "seq").values_list("run_id", "payload"))


def reuse_saving_of(run_id: int, decision: Any) -> ReuseSaving | None:
    """The saving of one run from its latest planner decision's payload (a query only on reuse)."""
    if not isinstance(decision, dict) or not decision.get("reused_from"):
        return None
    return _savings([(run_id, decision)])[0]


def _savings(decisions: Iterable[tuple[int, dict[str, Any]]]) -> list[ReuseSaving]:
    """Savings of (run id, planner decision payload) pairs: one query for the sources' calls."""
    rows = [
        (run_id, str(p.get("reused_from") or ""), int(p.get("saved_tokens") or 0))
        for run_id, p in decisions
        if p.get("reused_from")
    ]
    if not rows:
        return []
    sources = {int(r[1].split(":", 1)[1]) for r in rows if r[1].startswith("run:")}
    calls = dict(
        LlmCall.objects.filter(run_id__in=sources, purpose__in=["plan", "repair"])
        .values("run_id")
        .annotate(n=Count("id"))
        .values_list("run_id", "n")
    )
    out = []
    for run_id, source, tokens in rows:
        source_run = int(source.split(":", 1)[1]) if source.startswith("run:") else None
        saved_calls = max(1, calls.get(source_run, 0)) if source_run is not None else 1
        out.append(ReuseSaving(run_id, source, saved_calls, tokens))
    return out


def reuse_totals() -> ReuseTotals:
    """Every reuse so far, summed (the overview page and ``GET /api/reuse``)."""
    savings = reuse_savings()
    return ReuseTotals(
        runs=len({s.run_id for s in savings}),
        saved_calls=sum(s.saved_calls for s in savings),
        saved_tokens=sum(s.saved_tokens for s in savings),
    )
