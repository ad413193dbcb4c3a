"""Review-queue fixtures: a small tool registry (one sensitive tool), policies, submitted runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from reviews.models import ApprovalPolicy, ReviewItem
from runs.lifecycle.escalations import escalation_open
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, Step, Tool
from runs.plan_versions import plan_hash
from runs.statemachine import run_transition


@pytest.fixture
def key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def tools(db: None) -> dict[str, Tool]:
    """``record`` (harmless), ``deploy`` (sensitive), ``notify`` (harmless): all python tools."""

    def make(name: str, **fields: Any) -> Tool:
        return Tool.objects.create(
            name=name,
            kind=Tool.Kind.PYTHON,
            config={"callable": "tests.runs.toolbox.record"},
            parameters_schema={"type": "object"},
            timeout_seconds=10,
            **fields,
        )

    return {
        "record": make("record"),
        "deploy": make("deploy", sensitive=True),
        "notify": make("notify"),
    }


def step(id: str, action: str, key: str, deps: tuple[str, ...] = (), **extra: Any) -> dict:
    return {
        "id": id,
        "action": action,
        "params": {"key": key, "label": id},
        "depends_on": list(deps),
        **extra,
    }


@pytest.fixture
def plan_doc(key: str) -> dict:
    """Two steps: a harmless read, then a deploy on the sensitive tool."""
    return {
        "goal": "ship it",
        "steps": [
            step("read", "record", key),
            step("ship", "deploy", key, ("read",), confidence=0.4),
        ],
    }


@pytest.fixture
def global_policy(db: None) -> Callable[..., ApprovalPolicy]:
    def set_policy(mode: str, threshold: float = 0.6) -> ApprovalPolicy:
        ApprovalPolicy.objects.filter(tool__isnull=True, task__isnull=True).delete()
        return ApprovalPolicy.objects.create(mode=mode, confidence_threshold=threshold)

    return set_policy


@pytest.fixture
def submit(operator: User, tools: dict[str, Tool]) -> Callable[..., Run]:
    def do(document: Any, *, by: User | None = None, title: str = "task") -> Run:
        return run_submit_plan(
            title=title, document=document, submitted_by=by if by is not None else operator
        )

    return do


@pytest.fixture
def held(
    submit: Callable[..., Run], plan_doc: dict, global_policy: Callable[..., ApprovalPolicy]
) -> ReviewItem:
    """A run held for plan approval under an "always" policy, and its open item."""
    global_policy("always")
    run = submit(plan_doc)
    assert run.status == "awaiting_approval"
    return ReviewItem.objects.get(run=run)


def all_ticks(item: ReviewItem) -> list[int]:
    return list(range(len(item.checklist)))


def bound(item: ReviewItem) -> dict[str, Any]:
    """What a decision names about ``item`` as it is now: plan version and hash, a gate's params."""
    item.refresh_from_db()
    names: dict[str, Any] = {
        "plan_version": item.plan.version if item.plan is not None else None,
        "plan_hash": plan_hash(item.plan) or None,
    }
    if item.params_hash:
        names["params_hash"] = item.params_hash
    return names


@pytest.fixture
def stuck(submit: Callable[..., Run], plan_doc: dict) -> Callable[..., ReviewItem]:
    """An escalated run of read → ship: ``read`` succeeded, ``ship`` as given; its open item."""

    def make(
        cause: str, *, ship: str = "failed", read: str = "succeeded", escalate: bool = True
    ) -> ReviewItem:
        run = submit({**plan_doc, "rollback": [{"action": "record", "params": {}}]})
        run_transition(run_id=run.pk, to="executing", lease_owner="w1")
        Step.objects.filter(run=run, key="read").update(status=read)
        Step.objects.filter(run=run, key="ship").update(status=ship)
        if escalate:
            run_transition(run_id=run.pk, to="escalated", reason="stuck")
        step = Step.objects.get(run=run, key="ship")
        return escalation_open(run_id=run.pk, cause=cause, reason="stuck", step_id=step.pk)

    return make


@pytest.fixture
def three(
    submit: Callable[..., Run],
    key: str,
    global_policy: Callable[..., ApprovalPolicy],
    operator: User,
    admin_user: User,
) -> dict[str, ReviewItem]:
    """Held plans of high, medium and low risk; the medium one submitted by Ada."""
    global_policy("always")
    docs = {
        # sensitive tool (2) + production (2) + confidence 0.4 (1)
        "high": [step("ship", "deploy", key, confidence=0.4, env="production")],
        # a production target on a harmless tool (2)
        "medium": [step("read", "record", key, target="production")],
        "low": [step("read", "record", key, confidence=0.9)],
    }
    items = {}
    for name, steps in docs.items():
        for s in steps:  # the extra fields are params, not step fields
            for extra in ("env", "target"):
                if extra in s:
                    s["params"][extra] = s.pop(extra)
        by = admin_user if name == "medium" else operator
        run = submit({"goal": name, "steps": steps}, by=by, title=f"{name} task")
        items[name] = ReviewItem.objects.get(run=run)
    # The low one opened first and is overdue; the high one is due last.
    now = timezone.now()
    ReviewItem.objects.filter(pk=items["low"].pk).update(
        created_at=now - timedelta(hours=3), due_at=now - timedelta(hours=1)
    )
    ReviewItem.objects.filter(pk=items["high"].pk).update(due_at=now + timedelta(hours=5))
    return items
