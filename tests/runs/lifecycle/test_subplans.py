"""Hierarchical plans: subplan steps executed as child runs, the parent waiting without a worker."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from runs.lifecycle.cancel import run_cancel
from runs.lifecycle.claim import run_execute
from runs.lifecycle.recovery import runs_recover
from runs.lifecycle.submit import run_submit_plan
from runs.lifecycle.subplans import subplan_spawn
from runs.lifecycle.worker import RunWorker
from runs.models import Playbook, Run, RunStatus, Step, TranscriptEvent
from runs.planning.validation import validate_with_registry
from runs.statemachine import run_transition

R = RunStatus


def _playbook(name: str, goal: str, steps: list[dict[str, Any]], **extra: Any) -> None:
    Playbook.objects.create(
        name=name, task_text=goal, document={"goal": goal, "steps": steps, **extra}
    )


def _rec(key: str, step_id: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "record", "params": {"key": key, "label": label}, **extra}


def _undo(key: str, label: str) -> dict[str, Any]:
    return {"action": "record", "params": {"key": key, "label": label}}


def _sub(step_id: str, goal: str, **params: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "subplan", "params": {"goal": goal, **params}}


def _child(run: Run) -> Run:
    return Run.objects.get(parent_run=run)


def _kinds(run: Run) -> list[str]:
    return list(TranscriptEvent.objects.filter(run=run).values_list("kind", flat=True))


@pytest.fixture
def three_levels(execute: Any, key: str) -> dict[str, Any]:
    """A parent whose phase is a child run whose phase is a grandchild run that fails."""
    _playbook(
        "grandchild",
        "migrate the orders table",
        [
            _rec(key, "copy", "g-copy", undo=_undo(key, "undo-g-copy")),
            {"id": "switch", "action": "fail", "params": {"key": key, "label": "g-switch"}},
        ],
    )
    _playbook(
        "child",
        "upgrade the database",
        [
            _rec(key, "backup", "c-backup", undo=_undo(key, "undo-c-backup")),
            {**_sub("migrate", "migrate the orders table", planner="playbook")},
        ],
        rollback=[{"action": "record", "params": {"key": key, "label": "c-rollback"}}],
    )
    document = {
        "goal": "release the new version",
        "steps": [
            _rec(key, "announce", "p-announce", undo=_undo(key, "undo-p-announce")),
            {
                **_sub("upgrade", "upgrade the database", planner="playbook"),
                "depends_on": ["announce"],
            },
        ],
        "rollback": [{"action": "record", "params": {"key": key, "label": "p-rollback"}}],
    }
    return {"document": document}


def test_a_failing_grandchild_rolls_back_the_child_and_then_the_parent(
    three_levels: dict[str, Any], calls: list[str], fast_settings: Any
) -> None:
    parent = run_submit_plan(title="release", document=three_levels["document"], submitted_by=None)

    assert run_execute(run_id=parent.pk) == R.AWAITING_CHILD
    parent.refresh_from_db()
    assert parent.lease_owner == ""  # waiting holds no worker
    child = _child(parent)
    assert child.parent_step is not None and child.parent_step.key == "upgrade"
    assert run_execute(run_id=child.pk) == R.AWAITING_CHILD
    grandchild = _child(child)
    assert run_execute(run_id=grandchild.pk) == R.ROLLED_BACK

    # The grandchild's end queued the child; the child's end queued the parent.
    child.refresh_from_db()
    assert child.status == R.QUEUED
    assert run_execute(run_id=child.pk) == R.ROLLED_BACK
    parent.refresh_from_db()
    assert parent.status == R.QUEUED
    assert run_execute(run_id=parent.pk) == R.ROLLED_BACK

    assert calls == [
        "p-announce",
        "c-backup",
        "g-copy",
        "g-switch",
        "undo-g-copy",
        "undo-c-backup",
        "c-rollback",
        "undo-p-announce",
        "p-rollback",
    ]
    step = Step.objects.get(run=parent, key="upgrade", plan=parent.current_plan)
    assert step.status == "failed"
    assert f"child run {child.pk} ended rolled_back" in step.error
    # Each level records its own rollback and the child's end.
    for run in (parent, child):
        kinds = _kinds(run)
        assert "subplan.started" in kinds and "subplan.finished" in kinds
        assert kinds.index("subplan.started") < kinds.index("subplan.finished")
    rolled = Step.objects.filter(run__in=[parent, child, grandchild], phase="rollback")
    assert set(rolled.values_list("status", flat=True)) == {"succeeded"}


def test_a_succeeded_child_hands_its_results_to_the_parent_step(
    execute: Any, key: str, calls: list[str], fast_settings: Any
) -> None:
    _playbook("child", "collect the figures", [_rec(key, "fetch", "c-fetch")])
    document = {
        "steps": [
            _sub("collect", "collect the figures", planner="playbook"),
            {
                "id": "report",
                "action": "record",
                "params": {
                    "key": key,
                    "label": "report",
                    "value": "{{ steps.collect.result.results.fetch.path }}",
                },
                "depends_on": ["collect"],
            },
        ]
    }
    parent = run_submit_plan(title="report", document=document, submitted_by=None)

    assert run_execute(run_id=parent.pk) == R.AWAITING_CHILD
    child = _child(parent)
    assert run_execute(run_id=child.pk) == R.SUCCEEDED
    assert run_execute(run_id=parent.pk) == R.SUCCEEDED

    collect = Step.objects.get(run=parent, key="collect")
    assert collect.result == {
        "child_run": child.pk,
        "status": "succeeded",
        "results": {"fetch": {"label": "c-fetch", "value": None, "path": "/backups/c-fetch.db"}},
    }
    report = Step.objects.get(run=parent, key="report")
    assert report.result["value"] == "/backups/c-fetch.db"
    assert calls == ["c-fetch", "report"]


def test_cancelling_the_parent_cancels_the_child_and_the_grandchild(
    three_levels: dict[str, Any], operator: User, fast_settings: Any
) -> None:
    parent = run_submit_plan(title="release", document=three_levels["document"], submitted_by=None)
    run_execute(run_id=parent.pk)
    child = _child(parent)
    run_execute(run_id=child.pk)
    grandchild = _child(child)  # queued, not yet planned

    run_cancel(run_id=parent.pk, user=operator, reason="wrong day")

    for run in (parent, child, grandchild):
        run.refresh_from_db()
        assert run.status == R.CANCELLED, run
        assert "wrong day" in run.stop_reason
    assert f"parent run {child.pk} stopped" in grandchild.stop_reason
    assert not Step.objects.filter(run__in=[parent, child], status="pending").exists()


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_worker_executes_the_child_while_the_parent_waits(
    execute: Any, key: str, calls: list[str], fast_settings: Any, concurrency: int
) -> None:
    """One slot (a plain thread) or a host of runs: the waiting parent holds no slot."""
    _playbook("child", "collect the figures", [_rec(key, "fetch", "c-fetch")])
    document = {
        "steps": [
            _sub("collect", "collect the figures", planner="playbook"),
            {**_rec(key, "after", "after"), "depends_on": ["collect"]},
        ]
    }
    parent = run_submit_plan(title="report", document=document, submitted_by=None)

    RunWorker(worker_id="solo", batch=True, recovery_seconds=0, concurrency=concurrency).run()

    parent.refresh_from_db()
    assert parent.status == R.SUCCEEDED
    assert _child(parent).status == R.SUCCEEDED
    assert calls == ["c-fetch", "after"]
    statuses = [
        e.payload["to_status"]
        for e in TranscriptEvent.objects.filter(run=parent, kind="run.status")
    ]
    assert statuses == ["executing", "awaiting_child", "queued", "executing", "succeeded"]


def test_budgets_roll_up_and_the_child_gets_only_what_is_left(
    execute: Any, key: str, calls: list[str], fast_settings: Any
) -> None:
    fast_settings.PLANNERWEB_BUDGET_MAX_STEPS = 4
    _playbook(
        "child",
        "collect the figures",
        [_rec(key, "a", "c-a"), _rec(key, "b", "c-b"), _rec(key, "c", "c-c")],
    )
    document = {
        "steps": [
            _rec(key, "first", "p-first"),
            {**_sub("collect", "collect the figures", planner="playbook"), "depends_on": ["first"]},
        ]
    }
    parent = run_submit_plan(title="report", document=document, submitted_by=None)

    assert run_execute(run_id=parent.pk) == R.AWAITING_CHILD
    child = _child(parent)
    # Four steps in all: one used, one kept for the subplan step itself, two for the child.
    assert child.task.budget_max_steps == 2
    assert run_execute(run_id=child.pk) == R.ESCALATED
    assert "budget max_steps exceeded" in Run.objects.get(pk=child.pk).stop_reason
    assert calls == ["p-first", "c-a", "c-b"]
    # The escalated child fails the step: the parent's usage counts the child's steps.
    assert run_execute(run_id=parent.pk) in (R.FAILED, R.ESCALATED)


def test_a_child_deeper_than_the_limit_fails_its_step(
    three_levels: dict[str, Any], calls: list[str], fast_settings: Any
) -> None:
    fast_settings.PLANNERWEB_SUBPLAN_MAX_DEPTH = 1
    parent = run_submit_plan(title="release", document=three_levels["document"], submitted_by=None)
    run_execute(run_id=parent.pk)
    child = _child(parent)
    run_execute(run_id=child.pk)  # its own subplan would be level 2
    grandchild = _child(child)
    assert grandchild.status == R.FAILED
    assert "PLANNERWEB_SUBPLAN_MAX_DEPTH=1" in grandchild.stop_reason
    child.refresh_from_db()
    assert child.status in (R.QUEUED, R.ROLLED_BACK)  # woken by the sweep or at once
    runs_recover()
    assert run_execute(run_id=child.pk) == R.ROLLED_BACK
    assert "g-copy" not in calls and "undo-c-backup" in calls


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "goal"),
        ({"goal": ""}, "goal"),
        ({"goal": "x", "planner": "nobody"}, "planner"),
        ({"goal": "x", "policy": "sometimes"}, "policy"),
        ({"goal": "x", "extra": 1}, "extra"),
    ],
)
def test_bad_subplan_steps_are_plan_problems(
    toolset: None, params: dict[str, Any], message: str
) -> None:
    validated = validate_with_registry(
        {"steps": [{"id": "s", "action": "subplan", "params": params}]}
    )
    assert not validated.is_valid
    assert any(message in p.message for p in validated.problems), validated.problems


def test_a_subplan_cannot_undo(toolset: None) -> None:
    validated = validate_with_registry(
        {
            "steps": [{"id": "s", "action": "record", "params": {"key": "k", "label": "l"}}],
            "rollback": [{"action": "subplan", "params": {"goal": "undo it"}}],
        }
    )
    assert [p.code for p in validated.problems] == ["subplan_in_rollback"]


def _parent_waiting_for_its_child(key: str) -> Run:
    """A run whose one step is a subplan, executed until it waits for its child run."""
    _playbook("child", "collect the figures", [_rec(key, "fetch", "c-fetch")])
    parent = run_submit_plan(
        title="report",
        document={"steps": [_sub("collect", "collect the figures", planner="playbook")]},
        submitted_by=None,
    )
    run_execute(run_id=parent.pk)
    return parent


def test_a_lost_wake_up_is_found_by_the_recovery_sweep(
    execute: Any, key: str, fast_settings: Any
) -> None:
    parent = _parent_waiting_for_its_child(key)
    child = _child(parent)
    # The child's worker died right after ending it, before telling the parent.
    run_transition(run_id=child.pk, to=R.CANCELLED, reason="stopped elsewhere")
    parent.refresh_from_db()
    assert parent.status == R.AWAITING_CHILD

    runs_recover()

    parent.refresh_from_db()
    assert parent.status == R.QUEUED
    assert run_execute(run_id=parent.pk) == R.FAILED
    assert "ended cancelled: stopped elsewhere" in parent.steps.get(key="collect").error


def test_a_parent_taken_over_after_a_crash_keeps_its_one_child(
    execute: Any, key: str, fast_settings: Any
) -> None:
    parent = _parent_waiting_for_its_child(key)
    first = _child(parent)
    # A second spawn for the same step (a worker that died before parking, taken over)
    # finds the child it started.
    assert subplan_spawn(run_id=parent.pk, step_id=first.parent_step_id) == first
    assert Run.objects.filter(parent_run=parent).count() == 1


def test_the_api_and_the_run_page_show_the_tree(
    three_levels: dict[str, Any], operator: User, outsider: User, fast_settings: Any
) -> None:
    parent = run_submit_plan(title="release", document=three_levels["document"], submitted_by=None)
    run_execute(run_id=parent.pk)
    child = _child(parent)
    client = Client()
    client.force_login(operator)

    body = client.get(f"/api/runs/{parent.pk}").json()
    assert body["parent_run"] is None and body["parent_step"] is None
    assert body["children"] == [
        {"id": child.pk, "status": "queued", "title": "upgrade the database", "step": "upgrade"}
    ]
    body = client.get(f"/api/runs/{child.pk}").json()
    assert (body["parent_run"], body["parent_step"], body["children"]) == (parent.pk, "upgrade", [])

    page = client.get(f"/runs/{parent.pk}/").content.decode()
    assert f'data-child-run="{child.pk}"' in page and "awaiting_child" in page
    assert 'hx-trigger="every 3s"' in page  # the child is going: its status is polled
    page = client.get(f"/runs/{child.pk}/").content.decode()
    assert f'href="/runs/{parent.pk}/"' in page and "data-parent-run" in page
    tree = client.get(f"/runs/{parent.pk}/tree/")
    assert tree.status_code == 200 and b"data-children" in tree.content

    client.force_login(outsider)
    assert client.get(f"/runs/{parent.pk}/tree/").status_code == 403
    assert client.get(f"/api/runs/{parent.pk}").status_code == 403


def test_a_parent_that_rolls_back_rolls_back_its_succeeded_child(
    execute: Any, key: str, calls: list[str], fast_settings: Any
) -> None:
    _playbook(
        "child",
        "collect the figures",
        [_rec(key, "fetch", "c-fetch", undo=_undo(key, "undo-c-fetch"))],
        rollback=[{"action": "record", "params": {"key": key, "label": "c-rollback"}}],
    )
    document = {
        "steps": [
            _sub("collect", "collect the figures", planner="playbook"),
            {
                "id": "publish",
                "action": "fail",
                "params": {"key": key, "label": "p-publish"},
                "depends_on": ["collect"],
            },
        ],
        "rollback": [{"action": "record", "params": {"key": key, "label": "p-rollback"}}],
    }
    parent = run_submit_plan(title="report", document=document, submitted_by=None)
    run_execute(run_id=parent.pk)
    child = _child(parent)
    assert run_execute(run_id=child.pk) == R.SUCCEEDED

    assert run_execute(run_id=parent.pk) == R.ROLLED_BACK

    child.refresh_from_db()
    assert child.status == R.ROLLING_BACK  # reopened for a worker, holding none yet
    assert run_execute(run_id=child.pk) == R.ROLLED_BACK
    assert calls == ["c-fetch", "p-publish", "p-rollback", "undo-c-fetch", "c-rollback"]
    assert Step.objects.get(run=child, key="fetch").status == "rolled_back"
    reasons = [
        e.payload.get("reason")
        for e in TranscriptEvent.objects.filter(run=child, kind="run.status")
    ]
    assert f"parent run {parent.pk} rolled back" in reasons
