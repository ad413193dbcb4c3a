"""Replanning after a failed step: finished steps kept, replans bounded, plans naming no planner never replanned."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from runs.lifecycle.claim import run_execute
from runs.lifecycle.planning import run_submit_task
from runs.models import LlmCall, Plan, Run, RunStatus, Step, StepStatus, Tool, TranscriptEvent
from runs.plan_versions import OUTCOME_FIELDS
from runs.planning.providers.scripted import ScriptedProvider
from tests.runs.planning.test_planner import scripted

pytestmark = pytest.mark.django_db


@pytest.fixture
def replanning(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> Callable[..., tuple[Run, ScriptedProvider]]:
    def start(*script: Any, max_replans: int = 3) -> tuple[Run, ScriptedProvider]:
        model = scripted(monkeypatch, "openai", *script)
        run = run_submit_task(
            title="record then fail",
            submitted_by=operator,
            planner="openai",
            max_replans=max_replans,
        )
        return run, model

    return start


def failing_plan(key: str) -> dict[str, Any]:
    return {
        "goal": "record, then fail",
        "steps": [
            {"id": "a", "action": "record", "params": {"key": key, "label": "a"}},
            {
                "id": "boom",
                "action": "fail",
                "params": {"key": key, "label": "boom"},
                "depends_on": ["a"],
            },
            {
                "id": "c",
                "action": "record",
                "params": {"key": key, "label": "c"},
                "depends_on": ["boom"],
            },
        ],
        "rollback": [{"action": "record", "params": {"key": key, "label": "undo"}}],
    }


@pytest.mark.django_db(transaction=True)
def test_a_failed_step_is_replanned_keeping_finished_steps(
    replanning: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    from tests.runs import toolbox

    key = uuid.uuid4().hex
    fix = {
        "goal": "record without the broken step",
        "steps": [
            {
                "id": "c2",
                "action": "record",
                "params": {"key": key, "label": "c2"},
                "depends_on": ["a"],
            }
        ],
    }
    run, model = replanning(failing_plan(key), fix)
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["a", "boom", "c2"]  # a ran once: kept, not re-run
    v1, v2 = Plan.objects.filter(run=run).order_by("version")
    assert v2.parent_id == v1.pk and v2.source == Plan.Source.REPLANNER
    assert v2.diff["added"] == ["c2"] and v2.diff["removed"] == ["boom", "c"]
    assert (v2.diff["changed"], v2.diff["kept"]) == ([], ["a"])
    kept = Step.objects.get(plan=v2, key="a")
    assert kept.status == StepStatus.SUCCEEDED and kept.result["label"] == "a"
    assert v2.rollback == v1.rollback  # inherited: the finished work still needs undoing
    replan_prompt = model.requests[1].messages[0]["content"]
    assert "Finished steps (kept)" in replan_prompt and '"label": "a"' in replan_prompt
    assert "boom failed on purpose" in replan_prompt
    statuses = [
        p["to_status"]
        for p in TranscriptEvent.objects.filter(run=run, kind="run.status").values_list(
            "payload", flat=True
        )
    ]
    assert statuses == ["planning", "executing", "replanning", "executing", "succeeded"]
    assert TranscriptEvent.objects.filter(run=run, kind="plan.diff").count() == 1
    assert LlmCall.objects.filter(run=run, purpose="replan").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_step_kept_by_a_replan_keeps_its_verdict_attempts_and_times(
    replanning: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    Tool.objects.filter(name="record").update(
        checks=[{"type": "regex", "pattern": "^/backups/", "path": "path"}]
    )
    key = uuid.uuid4().hex
    fix = {
        "goal": "record without the broken step",
        "steps": [
            {
                "id": "c2",
                "action": "record",
                "params": {"key": key, "label": "c2"},
                "depends_on": ["a"],
            }
        ],
    }
    run, _ = replanning(failing_plan(key), fix)
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    v1, v2 = Plan.objects.filter(run=run).order_by("version")
    original, kept = Step.objects.get(plan=v1, key="a"), Step.objects.get(plan=v2, key="a")
    assert (original.verdict, original.attempts) == ("pass", 1) and original.finished_at
    assert {f: getattr(kept, f) for f in OUTCOME_FIELDS} == {
        f: getattr(original, f) for f in OUTCOME_FIELDS
    }


@pytest.mark.django_db(transaction=True)
def test_replans_are_bounded_then_the_run_rolls_back_with_a_failure_report(
    replanning: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    from tests.runs import toolbox

    key = uuid.uuid4().hex
    again = {
        "steps": [
            {
                "id": "retry1",
                "action": "fail",
                "params": {"key": key, "label": "retry1"},
                "depends_on": ["a"],
            }
        ]
    }
    run, _ = replanning(failing_plan(key), again, max_replans=1)
    assert run_execute(run_id=run.pk) == RunStatus.ROLLED_BACK
    run.refresh_from_db()
    assert "replans exhausted (1 of 1)" in run.stop_reason
    assert "partial results from: a" in run.stop_reason
    assert toolbox.CALLS[key] == ["a", "boom", "retry1", "undo"]
    report = TranscriptEvent.objects.get(run=run, kind="run.failure_report").payload
    assert report["succeeded"][0]["id"] == "a" and report["failed"][0]["id"] == "retry1"


@pytest.mark.django_db(transaction=True)
def test_hand_written_plans_naming_no_planner_are_never_replanned(
    planner_tools: Any, planner_settings: Any
) -> None:
    from runs.lifecycle.submit import run_submit_plan

    key = uuid.uuid4().hex
    run = run_submit_plan(title="t", document=failing_plan(key), submitted_by=None)
    assert run_execute(run_id=run.pk) == RunStatus.ROLLED_BACK
    assert Plan.objects.filter(run=run).count() == 1
    assert not LlmCall.objects.filter(run=run).exists()


@pytest.mark.django_db(transaction=True)
def test_a_replan_whose_worker_keeps_dying_gives_up_instead_of_asking_again(
    replanning: Callable[..., tuple[Run, ScriptedProvider]], planner_settings: Any
) -> None:
    from runs.lifecycle.replan import replan_after_failure

    run, model = replanning(failing_plan(uuid.uuid4().hex), max_replans=0)
    assert run_execute(run_id=run.pk) == RunStatus.ROLLED_BACK
    asked = len(model.requests)
    # As a worker that died mid-replan leaves it, the limit of attempts reached.
    limit = planner_settings.PLANNERWEB_MAX_PLANNING_ATTEMPTS
    Run.objects.filter(pk=run.pk).update(status=RunStatus.REPLANNING, planning_attempts=limit)
    run.task.max_replans = 3
    run.task.save(update_fields=["max_replans"])
    result = replan_after_failure(run_id=run.pk, failure="boom failed")
    assert not result.adopted
    assert f"replan 1 was attempted {limit} times" in result.report
    assert len(model.requests) == asked  # the model was not asked again
