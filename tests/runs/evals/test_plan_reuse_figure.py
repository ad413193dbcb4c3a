"""The plan-reuse benchmark's behaviour: on a hit the model is not called, and reused tasks still pass."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.plan_reuse import reuse_passes
from runs.evals.suite import suite_load
from runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = (
    "release",
    "read-then-verify",
    "planned-health-check",
    "failing-smoke-tests",
    "release-rejected",  # its plan is discarded by the suite's operator: cancelled
)


def test_a_second_pass_with_reuse_calls_the_model_only_where_no_approved_plan_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-scripted")
    loaded = suite_load("demo")
    subset = replace(loaded, tasks=[t for t in loaded.tasks if t.spec.name in TASKS])
    first, second = reuse_passes(subset, tmp_path)
    assert first.calls_by_task == dict.fromkeys(TASKS, 1)  # each planned once, over HTTP
    assert first.succeeded == {"release", "read-then-verify", "planned-health-check"}
    for name in first.succeeded:  # a hit: no request reached the model
        assert second.calls_by_task[name] == 0
    for name in ("failing-smoke-tests", "release-rejected"):  # nothing of theirs to reuse
        assert second.calls_by_task[name] == 1
    assert second.server_calls == 2 and second.tokens < first.tokens
    assert first.passed["release-rejected"] and second.passed["release-rejected"]
    assert second.rate(first.succeeded) == first.rate(first.succeeded) == 1.0
    assert second.rate() == first.rate()
    reused = Run.objects.filter(plans__source="planner", llm_calls=None).distinct().count()
    assert reused == 3
