"""Hand-written plans that name a planner: replanned after a failed step, by a model or offline."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from reviews.models import ApprovalPolicy, ReviewItem
from runs.lifecycle.claim import run_execute
from runs.lifecycle.reviews import review_approve
from runs.lifecycle.submit import run_submit_plan
from runs.models import LlmCall, Plan, Run, RunStatus, Step, Tool, TranscriptEvent
from runs.planning.options import PlannerOptionsError
from runs.planning.providers import FACTORIES
from runs.planning.providers.openai import OpenAIProvider
from tests.reviews.conftest import all_ticks
from tests.runs import toolbox
from tests.runs.planning.providers.fake_llm import Answer, FakeLLM, openai_response, running

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    yield from running()


def failing_plan(key: str, *, fallback: bool = False) -> dict[str, Any]:
    """a → boom (always fails) → c, with a rollback; ``fallback``: boom declares one."""
    boom: dict[str, Any] = {
        "id": "boom",
        "action": "fail",
        "params": {"key": key, "label": "boom"},
        "depends_on": ["a"],
    }
    if fallback:
        boom["fallback"] = {
            "action": "record",
            "params": {"key": key, "label": "plan-b"},
            "description": "record instead",
        }
    return {
        "goal": "record, then fail",
        "steps": [
            {"id": "a", "action": "record", "params": {"key": key, "label": "a"}},
            boom,
            {
                "id": "c",
                "action": "record",
                "params": {"key": key, "label": "c"},
                "depends_on": ["boom"],
            },
        ],
        "rollback": [{"action": "record", "params": {"key": key, "label": "undo"}}],
    }


def submit(document: Any, **replanner: Any) -> Run:
    run = run_submit_plan(title="hand-written", document=document, submitted_by=None, **replanner)
    return run


def test_a_hand_written_plan_naming_a_model_is_replanned_through_the_real_sdk(
    fake: FakeLLM, planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    fake.queue(Answer(body=openai_response(json.dumps(fix))))
    monkeypatch.setitem(
        FACTORIES,
        "openai",
        lambda **_: OpenAIProvider(base_url=fake.url + "/v1", api_key="sk-test-abcdefghijklmnop"),
    )
    run = submit(failing_plan(key), replanner={"planner": "openai", "max_replans": 1})
    assert (run.task.planner, run.task.mode, run.task.max_replans) == ("openai", "upfront", 1)
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["a", "boom", "c2"]  # a kept, never re-run
    v1, v2 = Plan.objects.filter(run=run).order_by("version")
    assert (v1.source, v2.source, v2.parent_id) == ("operator", "replanner", v1.pk)
    assert v2.diff["added"] == ["c2"] and v2.diff["removed"] == ["boom", "c"]
    assert (v2.diff["changed"], v2.diff["kept"]) == ([], ["a"])
    prompt = fake.requests[0].body["input"][-1]["content"]
    # The model got the plan as written, the finished steps and the error.
    assert "The plan that failed, as written" in prompt and '"goal": "record, then fail"' in prompt
    assert "Finished steps (kept)" in prompt and "boom failed on purpose" in prompt
    assert LlmCall.objects.filter(run=run, purpose="replan").count() == 1
    assert TranscriptEvent.objects.filter(run=run, kind="plan.diff").count() == 1


def test_the_offline_planner_puts_the_declared_fallback_in_the_failed_steps_place(
    planner_tools: Any, planner_settings: Any
) -> None:
    key = uuid.uuid4().hex
    run = submit(failing_plan(key, fallback=True), replanner={"planner": "playbook"})
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["a", "boom", "plan-b", "c"]
    v2 = Plan.objects.get(run=run, version=2)
    assert v2.diff["changed"][0]["id"] == "boom"
    assert v2.diff["changed"][0]["values"]["action"] == {"from": "fail", "to": "record"}
    assert (
        v2.diff["kept"] == ["a", "c"]
        and v2.rollback == Plan.objects.get(run=run, version=1).rollback
    )
    boom = Step.objects.get(plan=v2, key="boom")
    assert "record instead" in boom.description and "fail" in boom.description
    assert not LlmCall.objects.filter(run=run).exists()  # offline: no model call


def test_without_a_declared_fallback_the_offline_planner_gives_up_and_the_plan_rolls_back(
    planner_tools: Any, planner_settings: Any
) -> None:
    key = uuid.uuid4().hex
    run = submit(failing_plan(key), replanner={"planner": "playbook"})
    assert run_execute(run_id=run.pk) == RunStatus.ROLLED_BACK
    run.refresh_from_db()
    assert "no fallback declared for the failed step (boom)" in run.stop_reason
    assert toolbox.CALLS[key] == ["a", "boom", "undo"]


def test_a_fallback_that_fails_too_ends_in_the_rollback(
    planner_tools: Any, planner_settings: Any
) -> None:
    key = uuid.uuid4().hex
    doc = failing_plan(key, fallback=True)
    doc["steps"][1]["fallback"] = {"action": "fail", "params": {"key": key, "label": "b2"}}
    run = submit(doc, replanner={"planner": "playbook", "max_replans": 3})
    assert run_execute(run_id=run.pk) == RunStatus.ROLLED_BACK
    assert toolbox.CALLS[key] == ["a", "boom", "b2", "undo"]  # the fallback has no fallback
    assert Plan.objects.filter(run=run).count() == 2


def test_a_replanned_hand_written_plan_waits_for_approval_when_the_policy_says_so(
    planner_tools: Any, planner_settings: Any, reviewer: User, operator: User
) -> None:
    key = uuid.uuid4().hex
    ApprovalPolicy.objects.create(mode="always")
    run = run_submit_plan(
        title="t",
        document=failing_plan(key, fallback=True),
        submitted_by=operator,
        replanner={"planner": "playbook"},
    )
    first = ReviewItem.objects.get(run=run)
    review_approve(item_id=first.pk, user=reviewer, checklist=all_ticks(first))
    assert run_execute(run_id=run.pk) == RunStatus.AWAITING_APPROVAL
    run.refresh_from_db()
    assert run.lease_owner == "" and toolbox.CALLS[key] == ["a", "boom"]
    second = ReviewItem.objects.get(run=run, status="open")
    assert (second.kind, second.plan.version) == ("plan_approval", 2)  # type: ignore[union-attr]
    review_approve(item_id=second.pk, user=reviewer, checklist=all_ticks(second))
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["a", "boom", "plan-b", "c"]


def test_the_item_a_replan_opens_stores_the_risk_of_the_new_version(
    planner_tools: Any, planner_settings: Any, reviewer: User, operator: User
) -> None:
    """v1's failing step is on a sensitive tool and targets production; v2's fallback neither."""
    key = uuid.uuid4().hex
    ApprovalPolicy.objects.create(mode="always")
    Tool.objects.filter(name="fail").update(sensitive=True)
    document = failing_plan(key, fallback=True)
    document["steps"][1]["params"]["env"] = "production"
    run = run_submit_plan(
        title="t", document=document, submitted_by=operator, replanner={"planner": "playbook"}
    )
    first = ReviewItem.objects.get(run=run)
    assert (first.risk_sensitive, first.risk_production, first.risk_score) == (True, True, 4)
    assert first.submitter_name == operator.get_username()
    review_approve(item_id=first.pk, user=reviewer, checklist=all_ticks(first))
    assert run_execute(run_id=run.pk) == RunStatus.AWAITING_APPROVAL
    second = ReviewItem.objects.get(run=run, status="open")
    assert second.plan.version == 2  # type: ignore[union-attr]
    assert (second.risk_sensitive, second.risk_production, second.risk_score) == (False, False, 0)


@pytest.mark.parametrize(
    ("replanner", "field"),
    [
        ({"max_replans": 2}, "planner"),
        ({"planner": "manual"}, "planner"),
        ({"planner": "nope"}, "planner"),
        ({"planner": "playbook", "mode": "iterative"}, "mode"),
        ({"planner": "playbook", "max_replans": 99}, "max_replans"),
    ],
)
def test_replanner_options_that_cannot_work_are_refused_and_nothing_is_written(
    planner_tools: Any, replanner: dict[str, Any], field: str
) -> None:
    with pytest.raises(PlannerOptionsError) as caught:
        submit(failing_plan("k"), replanner=replanner)
    assert caught.value.field == field
    assert not Run.objects.exists()


def test_the_api_shows_the_replanned_version_and_its_diff(
    planner_tools: Any, planner_settings: Any, operator: User
) -> None:
    from tests.runs.api.conftest import api_as

    key = uuid.uuid4().hex
    client = api_as(operator)
    created = client.post(
        "/tasks", {"plan": failing_plan(key, fallback=True), "planner": "playbook"}
    )
    assert created.status_code == 201, created.json()
    run_id = created.json()["id"]
    assert run_execute(run_id=run_id) == RunStatus.SUCCEEDED
    plans = client.get(f"/runs/{run_id}/plans").json()
    assert [(p["version"], p["source"]) for p in plans] == [(1, "operator"), (2, "replanner")]
    assert plans[1]["diff"]["changed"][0]["id"] == "boom"
    assert plans[1]["diff"]["kept"] == ["a", "c"]
