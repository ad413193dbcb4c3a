"""``suite_evaluate``: run a suite in its own database, then store its metrics in this one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.utils import timezone

from runs.evals.metrics import Summary, suite_run_store, summarize
from runs.evals.runner import Progress, RunOptions, TaskResult, suite_isolated, suite_run
from runs.evals.suite import LoadedSuite
from runs.models import SuiteRun


@dataclass(frozen=True)
class Evaluation:
    results: list[TaskResult]
    summary: Summary
    stored: SuiteRun


def suite_evaluate(
    loaded: LoadedSuite,
    options: RunOptions,
    *,
    fail_under: float | None = None,
    isolate: bool = True,
    progress: Progress | None = None,
) -> Evaluation:
    """1. Run every task (in a fresh database unless ``isolate`` is off); 2. judge the bands;
    3. store the suite run with its metrics where the dashboard reads it."""
    started = timezone.now()
    if isolate:
        with suite_isolated(Path(options.workdir)):
            results = suite_run(loaded, options, progress)
    else:
        results = suite_run(loaded, options, progress)
    summary = summarize(loaded, results, fail_under)
    stored = suite_run_store(
        loaded=loaded,
        options=options,
        results=results,
        summary=summary,
        started_at=started,
        finished_at=timezone.now(),
    )
    return Evaluation(results, summary, stored)
