"""Reads: what pages, the CLI and the API show about runs."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from runs.models import Run, Step, StepStatus, TranscriptEvent

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
