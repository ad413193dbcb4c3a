"""Escalations end to end: the run stops holding nothing, a reviewer acts, a worker resumes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django_tasks_db.models import DBTaskResult

from reviews.models import ReviewItem
from reviews.statemachine import ReviewError
from runs.lifecycle.claim import run_claim, run_execute
from runs.lifecycle.escalations import review_resolve_escalation
from runs.lifecycle.planning import run_submit_task
from runs.lifecycle.submit import run_submit_plan
from runs.lifecycle.worker import RunWorker
from runs.models import Plan, Run, RunStatus, Step, Tool, TranscriptEvent
from runs.plan_versions import OUTCOME_FIELDS, plan_hash
from runs.planning.providers import FACTORIES
from runs.planning.providers.scripted import ScriptedProvider
from runs.statemachine import run_transition
from runs.tasks import resume_run
from tests.reviews.conftest import all_ticks

pytestmark = pytest.mark.django_db(transaction=True)


def step(sid: str, action: str, key: str, deps: tuple[str, ...] = (), **params: Any) -> dict:
    return {
        "id": sid,
        "action": action,
        "params": {"key": key, "label": sid, **params},
        "depends_on": list(deps),
    }


@pytest.fixture
def picky(make_tool: Callable[..., Tool]) -> Tool:
    """Like ``flaky`` with no failures, but the evaluator wants attempt 2 or later."""
    return make_tool("picky", "flaky", checks=[{"type": "range", "path": "attempt", "min": 2}])


def escalated_run(key: str, *, rollback: bool = False) -> Run:
    """a → b (picky: its first result fails the evaluator) → c; ends escalated on b."""
    doc: dict[str, Any] = {
        "steps": [
            step("a", "record", key),
            step("b", "picky", key, ("a",), fail_times=0),
            step("c", "record", key, ("b",)),
        ]
    }
    if rollback:
        doc["rollback"] = [{"action": "record", "params": {"key": key, "label": "undo"}}]
    run = run_submit_plan(title="t", document=doc, submitted_by=None)
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.ESCALATED, run.stop_reason
    assert run.lease_owner == ""  # a run waiting for a human holds no worker and no lease
    return run


def resume_tasks(run_id: int) -> int:
    return sum(
        1
        for args in DBTaskResult.objects.filter(task_path=resume_run.module_path).values_list(
            "args_kwargs", flat=True
        )
        if args["args"] == [run_id]
    )


def decide(run: Run, user: User, action: str, **kw: Any) -> ReviewItem:
    item = ReviewItem.objects.get(run=run, kind="escalation", status="open")
    review_resolve_escalation(
        item_id=item.pk, user=user, action=action, checklist=all_ticks(item), **kw
    )
    return item


def work() -> None:
    RunWorker(worker_id="w-resume", batch=True, recovery_seconds=0).run()


def statuses(run: Run) -> dict[str, str]:
    return dict(Step.objects.filter(plan_id=run.current_plan_id).values_list("key", "status"))


@pytest.fixture
def ready(fast_settings: Any, toolset: None, picky: Tool) -> None:
    return None


def test_retry_reruns_the_step_keeping_its_attempts_and_the_run_finishes(
    ready: None, reviewer: User, key: str, calls: list[str]
) -> None:
    run = escalated_run(key)
    item = ReviewItem.objects.get(run=run)
    assert item.cause == "evaluator_fail" and item.step.key == "b"  # type: ignore[union-attr]
    decide(run, reviewer, "retry")
    assert resume_tasks(run.pk) == 1  # enqueued once the decision committed
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.stop_reason == "all steps succeeded"
    assert calls == ["a", "b#1", "b#2", "c"]  # a is never re-run
    b = Step.objects.get(run=run, key="b")
    assert (b.attempts, b.verdict) == (2, "pass")
    kinds = list(TranscriptEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert kinds.index("review.decided") < len(kinds) - 1


def test_skip_skips_the_step_and_what_needs_it_then_the_run_finishes(
    ready: None, reviewer: User, key: str, calls: list[str]
) -> None:
    run = escalated_run(key)
    decide(run, reviewer, "skip")
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert statuses(run) == {"a": "succeeded", "b": "skipped", "c": "skipped"}
    assert calls == ["a", "b#1"]
    c = TranscriptEvent.objects.filter(run=run, kind="step.status").order_by("-seq").first()
    assert c is not None and "needs b, which was skipped" in c.payload["reason"]


def test_edit_and_resume_runs_the_reviewers_version_keeping_finished_steps(
    ready: None, reviewer: User, key: str, calls: list[str]
) -> None:
    run = escalated_run(key)
    edited = {"steps": [step("a", "record", key), step("b2", "record", key, ("a",))]}
    decide(run, reviewer, "edit", document=edited)
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert (run.current_plan.version, run.current_plan.source) == (2, Plan.Source.REVIEWER)  # type: ignore[union-attr]
    assert statuses(run) == {"a": "succeeded", "b2": "succeeded"}
    assert calls == ["a", "b#1", "b2"]


def test_a_step_carried_into_the_reviewers_version_keeps_its_verdict_attempts_error_and_times(
    ready: None, make_tool: Callable[..., Tool], reviewer: User, key: str
) -> None:
    make_tool(
        "checked_flaky",
        "flaky",
        idempotent=True,
        max_retries=2,
        checks=[{"type": "range", "path": "attempt", "min": 1}],
    )
    doc = {
        "steps": [
            step("a", "checked_flaky", key, fail_times=1),
            step("b", "picky", key, ("a",), fail_times=0),
        ]
    }
    run = run_submit_plan(title="t", document=doc, submitted_by=None)
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.ESCALATED, run.stop_reason
    original = Step.objects.get(plan_id=run.current_plan_id, key="a")
    # The first attempt's error is the attempt's, not the step's: a success clears it.
    assert (original.verdict, original.attempts, original.error) == ("pass", 2, "")
    edited = {
        "steps": [step("a", "checked_flaky", key, fail_times=1), step("b2", "record", key, ("a",))]
    }
    decide(run, reviewer, "edit", document=edited)
    run.refresh_from_db()
    carried = Step.objects.get(plan_id=run.current_plan_id, key="a")
    assert carried.plan_id != original.plan_id
    assert {f: getattr(carried, f) for f in OUTCOME_FIELDS} == {
        f: getattr(original, f) for f in OUTCOME_FIELDS
    }


def test_rollback_undoes_the_finished_work(
    ready: None, reviewer: User, key: str, calls: list[str]
) -> None:
    run = escalated_run(key, rollback=True)
    decide(run, reviewer, "rollback")
    assert Run.objects.get(pk=run.pk).status == RunStatus.ROLLING_BACK
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.ROLLED_BACK
    assert calls == ["a", "b#1", "undo"]
    assert statuses(run)["a"] == "rolled_back"


def test_abort_ends_the_run_at_once_without_a_worker(
    ready: None, reviewer: User, key: str, calls: list[str]
) -> None:
    run = escalated_run(key)
    decide(run, reviewer, "abort", reason="not worth it")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and "abort decided by rob" in run.stop_reason
    assert resume_tasks(run.pk) == 0


def test_a_refused_action_writes_nothing(ready: None, reviewer: User, key: str) -> None:
    run = escalated_run(key)
    decide(run, reviewer, "retry")
    item = ReviewItem.objects.get(run=run)
    assert item.status == "approved"
    # A second escalation on a run that is queued again: only abort applies.
    from runs.lifecycle.escalations import escalation_open

    again = escalation_open(run_id=run.pk, cause="partial_run", reason="x")
    with pytest.raises(ReviewError, match="not escalated"):
        review_resolve_escalation(
            item_id=again.pk, user=reviewer, action="skip", checklist=all_ticks(again)
        )
    assert ReviewItem.objects.get(pk=again.pk).status == "open"


def test_a_step_that_may_have_partly_run_escalates_and_a_retry_reruns_it(
    ready: None, reviewer: User, key: str, calls: list[str]
) -> None:
    run = run_submit_plan(
        title="t",
        document={"steps": [step("a", "flaky_once", key, fail_times=0)]},
        submitted_by=None,
    )
    token = run_claim(run_id=run.pk, worker_id="dead")
    assert token is not None
    Step.objects.filter(run=run, key="a").update(status="running", attempts=1)
    Run.objects.filter(pk=run.pk).update(lease_expires_at=None)  # its worker died
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.ESCALATED and "may have partly run" in run.stop_reason
    item = ReviewItem.objects.get(run=run)
    assert (item.cause, item.step.key) == ("partial_run", "a")  # type: ignore[union-attr]
    decide(run, reviewer, "retry")
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and calls == ["a#1"]
    assert Step.objects.get(run=run, key="a").attempts == 2


def test_a_planner_that_picks_an_unknown_tool_escalates_and_a_written_plan_resumes(
    fast_settings: Any,
    toolset: None,
    reviewer: User,
    operator: User,
    key: str,
    calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = {"steps": [{"id": "a", "action": "drop_database", "params": {}}]}
    monkeypatch.setitem(FACTORIES, "openai", lambda **_: ScriptedProvider([bad] * 6))
    run = run_submit_task(title="t", submitted_by=operator, planner="openai")
    assert run_execute(run_id=run.pk) == RunStatus.ESCALATED
    item = ReviewItem.objects.get(run=run)
    assert item.cause == "unknown_tool" and item.context["problems"]
    decide(run, reviewer, "write_plan", document={"steps": [step("a", "record", key)]})
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and calls == ["a"]


def test_escalated_is_terminal_except_for_a_reviewers_reopen(ready: None, key: str) -> None:
    from runs.statemachine import TransitionError

    run = escalated_run(key)
    with pytest.raises(TransitionError):
        run_transition(run_id=run.pk, to=RunStatus.QUEUED)
    reopened = run_transition(run_id=run.pk, to=RunStatus.QUEUED, reopen=True)
    assert (reopened.status, reopened.finished_at, reopened.stop_reason) == ("queued", None, "")


def test_recovery_leaves_a_resumed_run_whose_task_waits_alone(
    ready: None, reviewer: User, key: str
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from runs.lifecycle.recovery import runs_recover

    run = escalated_run(key)
    decide(run, reviewer, "retry")
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert runs_recover() == []  # its resume_run task is waiting: no second task
    assert resume_tasks(run.pk) == 1


# --------------------------------------------------------------------------- through the API
def test_a_reviewer_resumes_an_escalated_run_through_the_api_and_a_worker_finishes_it(
    ready: None, reviewer: User, key: str, calls: list[str]
) -> None:
    from tests.runs.api.conftest import api_as

    run = escalated_run(key)
    item = ReviewItem.objects.get(run=run, kind="escalation")
    response = api_as(reviewer).post(
        f"/runs/{run.pk}/resume", {"action": "retry", "checklist": all_ticks(item)}
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == RunStatus.QUEUED
    item.refresh_from_db()
    assert (item.status, item.decided_by) == ("approved", reviewer)
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert calls == ["a", "b#1", "b#2", "c"]


def test_an_api_edit_resumes_with_the_reviewers_plan_text(
    ready: None, reviewer: User, key: str, calls: list[str]
) -> None:
    from tests.runs.api.conftest import api_as

    run = escalated_run(key)
    item = ReviewItem.objects.get(run=run, kind="escalation")
    plan = (
        f"steps:\n  - {{id: a, action: record, params: {{key: {key}, label: a}}}}\n"
        f"  - {{id: z, action: record, params: {{key: {key}, label: z}}, depends_on: [a]}}\n"
    )
    response = api_as(reviewer).post(
        f"/runs/{run.pk}/resume", {"action": "edit", "plan": plan, "checklist": all_ticks(item)}
    )
    assert response.status_code == 200, response.json()
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.current_plan.version == 2  # type: ignore[union-attr]
    assert calls == ["a", "b#1", "z"]


def test_an_api_resume_naming_another_plan_version_is_409_stale_plan(
    ready: None, reviewer: User, key: str, calls: list[str]
) -> None:
    from tests.runs.api.conftest import api_as

    run = escalated_run(key)
    item = ReviewItem.objects.get(run=run, kind="escalation")
    body = {"action": "retry", "checklist": all_ticks(item), "plan_version": 2}
    response = api_as(reviewer).post(f"/runs/{run.pk}/resume", body)
    assert (response.status_code, response.json()["code"]) == (409, "stale_plan")
    item.refresh_from_db()
    assert item.status == "open" and Run.objects.get(pk=run.pk).status == RunStatus.ESCALATED
    body = {**body, "plan_version": 1, "plan_hash": plan_hash(item.plan)}
    assert api_as(reviewer).post(f"/runs/{run.pk}/resume", body).status_code == 200


@pytest.mark.parametrize(
    ("who", "body", "status", "code"),
    [
        ("operator", {"action": "retry"}, 403, "forbidden"),
        ("reviewer", {"action": "retry"}, 422, "checklist_incomplete"),
        ("reviewer", {"action": "abort"}, 422, "invalid_input"),  # abort needs a reason
        ("reviewer", {"action": "edit", "plan": "steps: [oops"}, 422, "invalid_input"),
        (
            "reviewer",
            {"action": "edit", "plan": {"steps": [{"id": "x", "action": "nope"}]}},
            422,
            None,
        ),
        ("reviewer", {"action": "retry", "plan": {"steps": []}}, 422, "invalid_input"),
        ("reviewer", {"action": "launch"}, 422, "invalid_input"),
    ],
    ids=[
        "operator",
        "checklist",
        "abort-reason",
        "plan-syntax",
        "plan-invalid",
        "plan-unasked",
        "action",
    ],
)
def test_a_refused_api_resume_is_a_4xx_and_writes_nothing(
    ready: None,
    reviewer: User,
    operator: User,
    key: str,
    who: str,
    body: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    from tests.runs.api.conftest import api_as

    run = escalated_run(key)
    events = TranscriptEvent.objects.filter(run=run).count()
    response = api_as(reviewer if who == "reviewer" else operator).post(
        f"/runs/{run.pk}/resume", body
    )
    assert response.status_code == status, response.json()
    if code is not None:
        assert response.json()["code"] == code
    run.refresh_from_db()
    assert run.status == RunStatus.ESCALATED
    assert ReviewItem.objects.get(run=run, kind="escalation").status == "open"
    assert TranscriptEvent.objects.filter(run=run).count() == events
    assert Plan.objects.filter(run=run).count() == 1


def test_resuming_a_run_without_an_open_escalation_is_409(
    ready: None, reviewer: User, key: str
) -> None:
    from tests.runs.api.conftest import api_as

    run = escalated_run(key)
    client = api_as(reviewer)
    item = ReviewItem.objects.get(run=run, kind="escalation")
    assert (
        client.post(
            f"/runs/{run.pk}/resume", {"action": "skip", "checklist": all_ticks(item)}
        ).status_code
        == 200
    )
    again = client.post(f"/runs/{run.pk}/resume", {"action": "skip", "checklist": all_ticks(item)})
    assert (again.status_code, again.json()["code"]) == (409, "not_escalated")
    assert client.post("/runs/999999/resume", {"action": "skip"}).status_code == 404
