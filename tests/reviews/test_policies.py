"""Approval policies: global modes, per-tool and per-task overrides, quorum, the step gate."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
from django.db import IntegrityError

from reviews.models import ApprovalPolicy
from reviews.policies import (
    gate_threshold,
    plan_needs_approval,
    required_approvals,
    step_needs_gate,
)
from runs.lifecycle.submit import plan_create
from runs.models import Plan, Run, Task, Tool
from tests.reviews.conftest import step

pytestmark = pytest.mark.django_db


@pytest.fixture
def make_plan(tools: dict[str, Tool], key: str) -> Callable[..., Plan]:
    def make(*steps: dict, task: Task | None = None) -> Plan:
        task = task or Task.objects.create(title="t")
        run = Run.objects.create(task=task)
        plan = plan_create(run=run, document={"steps": list(steps)}, source="operator")
        assert plan.is_valid, plan.errors
        return plan

    return make


def test_the_default_from_settings_is_never(make_plan: Callable[..., Plan], key: str) -> None:
    plan = make_plan(step("s", "deploy", key))
    assert plan_needs_approval(plan, plan.run.task) is None


def test_always_holds_any_plan(
    make_plan: Callable[..., Plan], key: str, global_policy: Callable[..., ApprovalPolicy]
) -> None:
    global_policy("always")
    plan = make_plan(step("s", "record", key))
    assert plan_needs_approval(plan, plan.run.task) == "global policy: every plan needs approval"


def test_sensitive_holds_only_plans_using_a_sensitive_tool(
    make_plan: Callable[..., Plan], key: str, global_policy: Callable[..., ApprovalPolicy]
) -> None:
    global_policy("sensitive")
    harmless = make_plan(step("a", "record", key), step("b", "notify", key))
    risky = make_plan(step("a", "record", key), step("b", "deploy", key, ("a",)))
    assert plan_needs_approval(harmless, harmless.run.task) is None
    reason = plan_needs_approval(risky, risky.run.task)
    assert reason == "global policy: step 'b' uses the sensitive tool 'deploy'"


def test_low_confidence_holds_plans_with_a_step_below_the_threshold(
    make_plan: Callable[..., Plan], key: str, global_policy: Callable[..., ApprovalPolicy]
) -> None:
    global_policy("low_confidence", threshold=0.7)
    sure = make_plan(step("a", "record", key, confidence=0.7), step("b", "record", key))
    unsure = make_plan(step("a", "record", key, confidence=0.69))
    assert plan_needs_approval(sure, sure.run.task) is None
    assert "confidence 0.69 (below 0.7)" in (plan_needs_approval(unsure, unsure.run.task) or "")


def test_a_tool_override_beats_the_global_policy(
    make_plan: Callable[..., Plan],
    key: str,
    global_policy: Callable[..., ApprovalPolicy],
    tools: dict[str, Tool],
) -> None:
    global_policy("always")
    ApprovalPolicy.objects.create(tool=tools["record"], mode="never")
    ApprovalPolicy.objects.create(tool=tools["notify"], mode="always")
    only_record = make_plan(step("a", "record", key))
    with_notify = make_plan(step("a", "record", key), step("b", "notify", key))
    assert plan_needs_approval(only_record, only_record.run.task) is None
    assert plan_needs_approval(with_notify, with_notify.run.task) == (
        "tool notify policy: every plan needs approval"
    )


def test_a_task_override_decides_for_the_whole_plan(
    make_plan: Callable[..., Plan],
    key: str,
    global_policy: Callable[..., ApprovalPolicy],
    tools: dict[str, Tool],
) -> None:
    global_policy("never")
    ApprovalPolicy.objects.create(tool=tools["deploy"], mode="always")
    relaxed, strict = Task.objects.create(title="relaxed"), Task.objects.create(title="strict")
    ApprovalPolicy.objects.create(task=relaxed, mode="never")
    ApprovalPolicy.objects.create(task=strict, mode="always")
    plan = make_plan(step("a", "deploy", key), task=relaxed)
    assert plan_needs_approval(plan, relaxed) is None
    plan = make_plan(step("a", "record", key), task=strict)
    assert plan_needs_approval(plan, strict) == "task policy: every plan needs approval"


def test_there_is_one_global_policy_at_most(global_policy: Callable[..., ApprovalPolicy]) -> None:
    global_policy("never")
    with pytest.raises(IntegrityError):
        ApprovalPolicy.objects.create(mode="always")


def test_the_quorum_is_the_largest_among_the_plans_tools(
    make_plan: Callable[..., Plan], key: str, tools: dict[str, Tool]
) -> None:
    ApprovalPolicy.objects.create(tool=tools["deploy"], mode="sensitive", required_approvals=3)
    ApprovalPolicy.objects.create(tool=tools["notify"], mode="never", required_approvals=2)
    assert required_approvals(make_plan(step("a", "record", key))) == 1
    assert required_approvals(make_plan(step("a", "notify", key), step("b", "deploy", key))) == 3


@pytest.mark.parametrize(
    ("sensitive", "confidence", "gated"),
    [
        (True, 0.59, True),
        (True, 0.6, False),
        (True, None, False),
        (False, 0.1, False),
    ],
)
def test_the_step_gate_pauses_low_confidence_steps_on_sensitive_tools(
    sensitive: bool, confidence: float | None, gated: bool
) -> None:
    tool = SimpleNamespace(name="x", sensitive=sensitive)
    assert step_needs_gate(SimpleNamespace(confidence=confidence), tool, threshold=0.6) is gated


def test_the_gate_threshold_is_configurable_per_tool(
    tools: dict[str, Tool], settings: object
) -> None:
    assert gate_threshold("deploy") == 0.6
    ApprovalPolicy.objects.create(tool=tools["deploy"], mode="sensitive", confidence_threshold=0.9)
    assert gate_threshold("deploy") == 0.9
    assert step_needs_gate(SimpleNamespace(confidence=0.8), tools["deploy"]) is True
    assert step_needs_gate(SimpleNamespace(confidence=0.8), tools["record"]) is False
