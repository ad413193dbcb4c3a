"""Reads: what pages, the CLI and the API show about runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet

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


def run_list_with_progress() -> QuerySet[Run]:
    """Runs with their current plan's main-step counts, in one query however many runs."""
    main = Q(current_plan__steps__phase=Step.Phase.MAIN)
    return run_list().annotate(
        steps_total=Count("current_plan__steps", filter=main),
        steps_succeeded=Count(
            "current_plan__steps",
            filter=main & Q(current_plan__steps__status=StepStatus.SUCCEEDED),
        ),
    )


def run_search(
    *,
    statuses: list[str] | None = None,
    submitter: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    text: str | None = None,
) -> QuerySet[Run]:
    """The run list narrowed by every filter given, newest first (the page's and the API's).

    ``text`` matches the task title, or a run number written ``12`` or ``#12``.
    """
    runs = run_list_with_progress()
    if statuses:
        runs = runs.filter(status__in=statuses)
    if submitter:
        runs = runs.filter(task__submitted_by__username=submitter)
    if created_after is not None:
        runs = runs.filter(created_at__gte=created_after)
    if created_before is not None:
        runs = runs.filter(created_at__lt=created_before)
    if text and text.strip():
        text = text.strip()
        match = Q(task__title__icontains=text)
        number = text.removeprefix("#")
        if number.isdigit() and len(number) < 19:
            match |= Q(pk=int(number))
        runs = runs.filter(match)
    return runs.order_by("-created_at", "-id")


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
