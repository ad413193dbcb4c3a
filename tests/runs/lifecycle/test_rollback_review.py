"""An incomplete rollback: it escalates; the reviewer retries, marks the step done by hand, or aborts."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from reviews.audit import audit_verify
from reviews.models import AuditEntry, ReviewItem
from reviews.statemachine import ReviewError
from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, RunStatus, Step, TranscriptEvent
from tests.reviews.conftest import all_ticks
from tests.runs.api.conftest import api_as
from tests.runs.lifecycle.test_resume import decide, resume_tasks, statuses, step, work

pytestmark = pytest.mark.django_db(transaction=True)


def undo(action: str, key: str, label: str, **params: Any) -> dict[str, Any]:
    return {"action": action, "params": {"key": key, "label": label, **params}}


def half_rolled_back(key: str) -> Run:
    """a's undo fails once (a non-idempotent tool), c's undo succeeds; b failed."""
    doc = {
        "steps": [
            {**step("a", "record", key), "undo": undo("flaky_once", key, "undo-a", fail_times=1)},
            {**step("c", "record", key), "undo": undo("record", key, "undo-c")},
            step("b", "fail", key, ("a", "c")),
        ],
        "rollback": [{"action": "record", "params": {"key": key, "label": "notify"}}],
    }
    run = run_submit_plan(title="t", document=doc, submitted_by=None)
    work()
    run.refresh_from_db()
    return run


@pytest.fixture
def ready(fast_settings: Any, toolset: None) -> None:
    return None


def test_a_failing_undo_lets_the_others_run_and_escalates_with_what_was_undone(
    ready: None, key: str, calls: list[str]
) -> None:
    run = half_rolled_back(key)
    assert run.status == RunStatus.ESCALATED, run.stop_reason
    assert "undo-a#1" in calls and "undo-c" in calls and "notify" in calls
    assert statuses(run) == {
        "a": "succeeded",
        "c": "rolled_back",
        "b": "failed",
        "undo-a": "failed",
        "undo-c": "succeeded",
        "rollback-1": "succeeded",
    }
    item = ReviewItem.objects.get(run=run, kind="escalation")
    assert (item.cause, item.step.key) == ("rollback_incomplete", "undo-a")  # type: ignore[union-attr]
    assert item.context["undone"] == ["c"] and item.context["not_undone"] == ["a"]
    assert {r["id"]: r["status"] for r in item.context["rollback"]}["undo-a"] == "failed"


def test_retry_runs_the_failed_undo_again_and_the_run_ends_rolled_back(
    ready: None, reviewer: User, key: str, calls: list[str]
) -> None:
    run = half_rolled_back(key)
    decide(run, reviewer, "retry")
    assert Run.objects.get(pk=run.pk).status == RunStatus.ROLLING_BACK
    assert resume_tasks(run.pk) == 1
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.ROLLED_BACK, run.stop_reason
    assert statuses(run)["a"] == "rolled_back" and statuses(run)["undo-a"] == "succeeded"
    assert calls.count("undo-c") == 1 and calls.count("notify") == 1  # nothing undone twice


def test_mark_done_needs_a_reason_and_is_audited(
    ready: None, reviewer: User, key: str, calls: list[str]
) -> None:
    run = half_rolled_back(key)
    with pytest.raises(ReviewError, match="reason"):
        decide(run, reviewer, "mark_done")
    item = decide(run, reviewer, "mark_done", reason="reverted the release by hand")
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.ROLLED_BACK, run.stop_reason
    assert "undo-a#2" not in calls  # done by hand: never called again
    assert statuses(run)["a"] == "rolled_back" and statuses(run)["undo-a"] == "succeeded"
    entry = AuditEntry.objects.get(item_id=item.pk, action="escalation.mark_done")
    assert entry.reason == "reverted the release by hand" and entry.actor == reviewer
    assert audit_verify() == []
    marked = [
        e.payload
        for e in TranscriptEvent.objects.filter(run=run, kind="step.status")
        if e.payload["step"] == "undo-a" and e.payload["to_status"] == "succeeded"
    ]
    assert "marked done by hand" in marked[0]["reason"]
    assert "reverted the release by hand" in marked[0]["reason"]
    a = Step.objects.get(plan_id=run.current_plan_id, key="a")
    assert a.status == "rolled_back"


def test_abort_ends_the_run_cancelled(ready: None, reviewer: User, key: str) -> None:
    run = half_rolled_back(key)
    decide(run, reviewer, "abort", reason="ops take it from here")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and "abort decided by rob" in run.stop_reason
    assert statuses(run)["a"] == "succeeded"  # nothing claimed undone


@pytest.mark.parametrize("action", ["skip", "rollback"])
def test_actions_that_do_not_fit_an_incomplete_rollback_are_refused(
    ready: None, reviewer: User, key: str, action: str
) -> None:
    run = half_rolled_back(key)
    with pytest.raises(ReviewError, match="retry, mark_done, abort"):
        decide(run, reviewer, action)
    assert Run.objects.get(pk=run.pk).status == RunStatus.ESCALATED


def test_through_the_api_mark_done_needs_a_reason_and_skip_is_a_409_naming_the_choices(
    ready: None, reviewer: User, key: str
) -> None:
    run = half_rolled_back(key)
    item = ReviewItem.objects.get(run=run, kind="escalation")
    client = api_as(reviewer)
    ticks = all_ticks(item)
    missing = client.post(f"/runs/{run.pk}/resume", {"action": "mark_done", "checklist": ticks})
    assert missing.status_code == 422 and missing.json()["fields"][0]["field"] == "reason"
    skip = client.post(f"/runs/{run.pk}/resume", {"action": "skip", "checklist": ticks})
    assert skip.status_code == 409 and "retry, mark_done, abort" in skip.json()["detail"]
    done = client.post(
        f"/runs/{run.pk}/resume",
        {"action": "mark_done", "checklist": ticks, "reason": "undone by hand"},
    )
    assert done.status_code == 200, done.json()
    assert done.json()["status"] == RunStatus.ROLLING_BACK
    work()
    assert Run.objects.get(pk=run.pk).status == RunStatus.ROLLED_BACK


def test_the_item_page_lists_what_was_undone_and_offers_only_the_rollbacks_actions(
    ready: None, reviewer: User, key: str
) -> None:
    run = half_rolled_back(key)
    item = ReviewItem.objects.get(run=run, kind="escalation")
    client = Client()
    client.force_login(reviewer)
    page = client.get(f"/reviews/{item.pk}/").content.decode()
    assert "data-undone>c<" in page and "data-not-undone>a<" in page
    assert re.findall(r'data-action="([a-z_]+)"', page) == ["retry", "mark_done", "abort"]
    hidden = dict(re.findall(r'<input type="hidden" name="(plan_\w+)" value="([^"]*)"', page))
    ticks = {"checklist": [str(i) for i in range(len(item.checklist or []))]}
    client.post(f"/reviews/{item.pk}/resolve/", {"action": "retry", **ticks, **hidden})
    assert Run.objects.get(pk=run.pk).status == RunStatus.ROLLING_BACK


def test_after_a_crash_mid_rollback_a_non_idempotent_undo_is_not_called_twice(
    ready: None, reviewer: User, key: str, calls: list[str]
) -> None:
    doc = {
        "steps": [
            {**step("a", "record", key), "undo": undo("flaky_once", key, "undo-a", fail_times=0)},
            {**step("c", "record", key), "undo": undo("flaky", key, "undo-c", fail_times=0)},
        ]
    }
    run = run_submit_plan(title="t", document=doc, submitted_by=None)
    # What a worker that died while both undos ran leaves behind: no lease, steps running.
    Step.objects.filter(run=run, key__in=["a", "c"]).update(status="succeeded")
    Step.objects.filter(run=run, key__in=["undo-a", "undo-c"]).update(status="running", attempts=1)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.ROLLING_BACK, lease_owner="")
    assert run_execute(run_id=run.pk) == RunStatus.ESCALATED
    assert calls == ["undo-c#1"]  # the idempotent undo ran again; the other never
    item = ReviewItem.objects.get(run=run, kind="escalation")
    assert item.cause == "rollback_incomplete" and "may have partly run" in item.reason_opened
    decide(run, reviewer, "mark_done", reason="checked: the undo had finished")
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.ROLLED_BACK, run.stop_reason
    assert statuses(run)["a"] == statuses(run)["c"] == "rolled_back"
    assert calls == ["undo-c#1"]
