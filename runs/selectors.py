"""Reads: what pages, the CLI and the API show about runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from runs.models import Run, Step, StepStatus, Task, TranscriptEvent

STATUS_MARK = {
    StepStatus.PENDING: "·",
    StepStatus.RUNNING: "▶",
    StepStatus.SUCCEEDED: "✓",
    StepStatus.FAILED: "✗",
    StepStatus.SKIPPED: "-",
    StepStatus.CANCELLED: "⊘",
    StepStatus.ROLLED_BACK: "↺",
}


@dataclass(frozen=True)
class StepLine:
    number: int
    key: str
    phase: str
    status: str

    @property
    def mark(self) -> str:
        return STATUS_MARK.get(self.status, "?")  # type: ignore[call-overload]


@dataclass(frozen=True)
class RunProgress:
    run_id: int
    status: str
    stop_reason: str
    steps: tuple[StepLine, ...]

    def line(self) -> str:
        """The seeds' status line: ``[1] ✓ read_schema [2] ▶ backup ...``."""
        return " ".join(f"[{s.number}] {s.mark} {s.key}" for s in self.steps)


def run_progress(run_id: int) -> RunProgress:
    run = Run.objects.values("status", "stop_reason", "current_plan_id").get(pk=run_id)
    rows = Step.objects.filter(plan_id=run["current_plan_id"]).order_by("phase", "position")
    steps = tuple(
        StepLine(number=i + 1, key=key, phase=phase, status=status)
        for i, (key, phase, status) in enumerate(rows.values_list("key", "phase", "status"))
    )
    return RunProgress(run_id, run["status"], run["stop_reason"], steps)


def run_list() -> QuerySet[Run]:
    return Run.objects.select_related("task", "task__submitted_by", "current_plan")


def run_events(run_id: int, *, after: int = 0) -> QuerySet[TranscriptEvent]:
    return TranscriptEvent.objects.filter(run_id=run_id, seq__gt=after).order_by("seq")


def run_steps(run_id: int) -> QuerySet[Step]:
    run = Run.objects.values("current_plan_id").get(pk=run_id)
    return Step.objects.filter(plan_id=run["current_plan_id"]).order_by("phase", "position")


def run_search(
    *,
    q: str = "",
    status: str = "",
    submitter: str = "",
    created_from: date | None = None,
    created_to: date | None = None,
) -> QuerySet[Run]:
    """Runs for the list page, newest first, with main-step counts; date bounds are inclusive."""
    runs = run_list().annotate(
        steps_total=Count("current_plan__steps", filter=Q(current_plan__steps__phase="main")),
        steps_succeeded=Count(
            "current_plan__steps",
            filter=Q(
                current_plan__steps__phase="main",
                current_plan__steps__status=StepStatus.SUCCEEDED,
            ),
        ),
    )
    if q:
        text = q.strip()
        match = Q(task__title__icontains=text)
        number = text.removeprefix("#")
        if number.isdigit():
            match |= Q(pk=int(number))
        runs = runs.filter(match)
    if status:
        runs = runs.filter(status=status)
    if submitter:
        runs = runs.filter(task__submitted_by__username=submitter)
    if created_from:
        runs = runs.filter(created_at__gte=_day_start(created_from))
    if created_to:
        runs = runs.filter(created_at__lt=_day_start(created_to + timedelta(days=1)))
    return runs.order_by("-created_at", "-id")


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def run_submitters() -> list[str]:
    """Usernames that submitted at least one task (the list page's submitter choices)."""
    ids = Task.objects.exclude(submitted_by=None).values("submitted_by")
    return list(
        get_user_model()
        .objects.filter(pk__in=ids)
        .order_by("username")
        .values_list("username", flat=True)
    )


def run_last_seq(run_id: int) -> int:
    last = TranscriptEvent.objects.filter(run_id=run_id).order_by("-seq").values_list("seq")[:1]
    return last[0][0] if last else 0
