"""What a finished evaluation run did, read from the database into a plain value."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from reviews.models import ReviewItem, ReviewKind
from runs.models import LlmCall, Run, Step, StepStatus


@dataclass
class Observation:
    status: str
    stop_reason: str = ""
    cause: str = ""  # the latest escalation's cause
    tools: list[str] = field(default_factory=list)  # main-phase tools that ran, in start order
    steps: int = 0  # main-phase steps that ran
    tool_ok: int = 0
    tool_failed: int = 0
    evaluated: int = 0
    disagreements: int = 0  # the tool answered, the evaluator failed its result
    results: dict[str, Any] = field(default_factory=dict)  # step id -> result (final plan)
    tool_results: dict[str, Any] = field(default_factory=dict)  # tool -> last good result
    tokens: int = 0
    cost: Decimal = Decimal(0)
    model_calls: int = 0
    seconds: float = 0.0


def run_observe(run_id: int, *, seconds: float) -> Observation:
    """The run's status, cause, tool sequence, results and model use (``seconds`` is measured)."""
    run = Run.objects.get(pk=run_id)
    item = (
        ReviewItem.objects.filter(run_id=run_id, kind=ReviewKind.ESCALATION)
        .order_by("-created_at", "-pk")
        .first()
    )
    seen = Observation(
        status=run.status,
        stop_reason=run.stop_reason,
        cause=item.cause if item else "",
        seconds=seconds,
    )
    steps = (
        Step.objects.filter(run_id=run_id, phase=Step.Phase.MAIN, started_at__isnull=False)
        .order_by("started_at", "pk")
        .only("key", "tool_name", "status", "result", "verdict", "plan_id")
    )
    for step in steps:
        seen.tools.append(step.tool_name)
        seen.steps += 1
        if step.status == StepStatus.SUCCEEDED:
            seen.tool_ok += 1
            seen.tool_results[step.tool_name] = step.result
        elif step.status == StepStatus.FAILED:
            seen.tool_failed += 1
        if step.verdict:
            seen.evaluated += 1
            seen.disagreements += step.verdict == "fail"
        if step.plan_id == run.current_plan_id:
            seen.results[step.key] = step.result
    calls = LlmCall.objects.filter(run_id=run_id).aggregate(
        tin=Sum("tokens_in"), tout=Sum("tokens_out"), cost=Sum("cost")
    )
    seen.tokens = (calls["tin"] or 0) + (calls["tout"] or 0)
    seen.cost = calls["cost"] or Decimal(0)
    seen.model_calls = LlmCall.objects.filter(run_id=run_id).count()
    return seen
