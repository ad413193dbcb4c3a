"""A suite run's metrics, its tolerance bands, and storing it (with each task's result)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction

from runs.evals.runner import RunOptions, TaskResult
from runs.evals.suite import Bands, LoadedSuite
from runs.models import EvalSuite, SuiteRun, SuiteTaskResult
from runs.redaction import redact_text


@dataclass(frozen=True)
class Summary:
    metrics: dict[str, Any]
    breaches: list[str]

    @property
    def ok(self) -> bool:
        return not self.breaches


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def suite_metrics(results: list[TaskResult]) -> dict[str, Any]:
    """Pass rate, steps per task, tool success, evaluator disagreement, escalations, tokens, cost, latency."""
    count = len(results)
    seen = [r.seen for r in results]
    tool_calls = sum(s.tool_ok + s.tool_failed for s in seen)
    latencies = sorted(int(s.seconds * 1000) for s in seen)
    causes = Counter(s.cause or "unknown" for s in seen if s.status == "escalated")
    return {
        "tasks": count,
        "passed": sum(r.passed for r in results),
        "pass_rate": _rate(sum(r.passed for r in results), count) or 0.0,
        "steps_per_task": round(sum(s.steps for s in seen) / count, 2) if count else 0.0,
        "tool_success_rate": _rate(sum(s.tool_ok for s in seen), tool_calls),
        "disagreement_rate": _rate(
            sum(s.disagreements for s in seen), sum(s.evaluated for s in seen)
        ),
        "escalation_rate": _rate(sum(causes.values()), count),
        "escalations_by_cause": dict(sorted(causes.items())),
        "tokens": sum(s.tokens for s in seen),
        "cost": str(sum((s.cost for s in seen), Decimal(0)).quantize(Decimal("0.000001"))),
        "latency_ms_mean": round(sum(latencies) / count) if count else 0,
        "latency_ms_max": latencies[-1] if latencies else 0,
        "model_calls": sum(s.model_calls for s in seen),
    }


def band_breaches(bands: Bands, metrics: dict[str, Any], fail_under: float | None) -> list[str]:
    """Each band the metrics fall outside; ``fail_under`` (the command line) beats the suite's rate."""
    breaches = []
    # Without --fail-under or a pass-rate band, every task must pass.
    floor = fail_under if fail_under is not None else bands.pass_rate
    floor = 1.0 if floor is None else floor
    if metrics["pass_rate"] < floor:
        breaches.append(f"pass rate {metrics['pass_rate']:.0%} is under {floor:.0%}")
    checks: list[tuple[str, Any, Any, bool]] = [
        ("steps per task", metrics["steps_per_task"], bands.max_steps_per_task, True),
        ("tool success rate", metrics["tool_success_rate"], bands.min_tool_success_rate, False),
        (
            "evaluator disagreement rate",
            metrics["disagreement_rate"],
            bands.max_disagreement_rate,
            True,
        ),
        ("escalation rate", metrics["escalation_rate"], bands.max_escalation_rate, True),
        ("tokens", metrics["tokens"], bands.max_tokens, True),
        ("cost", float(metrics["cost"]), bands.max_cost, True),
        ("mean latency (ms)", metrics["latency_ms_mean"], bands.max_latency_ms, True),
    ]
    for name, value, limit, is_max in checks:
        if limit is None or value is None:
            continue
        if (is_max and value > limit) or (not is_max and value < limit):
            breaches.append(f"{name} {value} is {'over' if is_max else 'under'} {limit}")
    return breaches


def summarize(loaded: LoadedSuite, results: list[TaskResult], fail_under: float | None) -> Summary:
    metrics = suite_metrics(results)
    return Summary(metrics, band_breaches(loaded.suite.bands, metrics, fail_under))


@transaction.atomic
def suite_run_store(
    *,
    loaded: LoadedSuite,
    options: RunOptions,
    results: list[TaskResult],
    summary: Summary,
    started_at: datetime,
    finished_at: datetime,
) -> SuiteRun:
    """Store the suite run and each task's result, and the suite's text as it ran."""
    if loaded.path is not None:  # from a file: the stored copy follows the file
        suite, _ = EvalSuite.objects.update_or_create(
            name=loaded.name, defaults={"text": loaded.text, "source": str(loaded.path)}
        )
    else:
        suite, _ = EvalSuite.objects.get_or_create(name=loaded.name, defaults={"text": loaded.text})
    metrics = summary.metrics
    run = SuiteRun.objects.create(
        suite=suite,
        suite_name=loaded.name,
        provider=options.provider,
        model=options.model,
        mode=options.mode,
        repeat=options.repeat,
        tasks=metrics["tasks"],
        passed=metrics["passed"],
        pass_rate=metrics["pass_rate"],
        metrics=metrics,
        breaches=summary.breaches,
        ok=summary.ok,
        started_at=started_at,
        finished_at=finished_at,
    )
    SuiteTaskResult.objects.bulk_create(
        SuiteTaskResult(
            suite_run=run,
            name=r.name,
            attempt=r.attempt,
            planner=r.planner,
            passed=r.passed,
            outcome=r.seen.status,
            cause=r.seen.cause,
            failures=[redact_text(f) for f in r.failures],
            faults=r.faults,
            steps=r.seen.steps,
            tokens=r.seen.tokens,
            cost=r.seen.cost,
            latency_ms=int(r.seen.seconds * 1000),
        )
        for r in results
    )
    return run
