"""Confidence gates: a low-confidence step on a sensitive tool waits for a reviewer; the rest runs on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from reviews.decisions import Binding
from reviews.models import ApprovalPolicy, AuditEntry, ReviewItem
from reviews.statemachine import StalePlan
from runs.lifecycle.claim import run_execute
from runs.lifecycle.reviews import review_approve, review_reject
from runs.lifecycle.submit import run_submit_plan
from runs.lifecycle.worker import RunWorker
from runs.models import Run, RunStatus, Step, Tool, TranscriptEvent
from runs.plan_versions import content_hash
from tests.reviews.conftest import all_ticks
from tests.runs import toolbox

pytestmark = pytest.mark.django_db(transaction=True)


def step(sid: str, action: str, key: str, deps: tuple[str, ...] = (), **extra: Any) -> dict:
    params = {"key": key, "label": sid, **extra.pop("params", {})}
    return {"id": sid, "action": action, "params": params, "depends_on": list(deps), **extra}


@pytest.fixture
def deploy(make_tool: Callable[..., Tool], fast_settings: Any, toolset: None) -> Tool:
    return make_tool("deploy", "record", sensitive=True)


def gated_plan(key: str, confidence: float = 0.3) -> dict:
    """g (gated) → h; i and j are independent of g."""
    return {
        "steps": [
            step("i", "record", key),
            step("g", "deploy", key, confidence=confidence),
            step("h", "record", key, ("g",)),
            step("j", "record", key, ("i",)),
        ]
    }


def submit(document: dict) -> Run:
    return run_submit_plan(title="t", document=document, submitted_by=None)


def statuses(run: Run) -> dict[str, str]:
    return dict(Step.objects.filter(run=run).values_list("key", "status"))


def work() -> None:
    RunWorker(worker_id="w-gate", batch=True, recovery_seconds=0).run()


def test_a_gated_step_waits_while_independent_steps_run_then_the_run_holds_nothing(
    deploy: Tool, key: str, calls: list[str]
) -> None:
    run = submit(gated_plan(key))
    assert run_execute(run_id=run.pk) == RunStatus.AWAITING_APPROVAL
    run.refresh_from_db()
    assert run.lease_owner == "" and run.lease_expires_at is None
    assert sorted(calls) == ["i", "j"]
    assert statuses(run) == {"i": "succeeded", "j": "succeeded", "g": "pending", "h": "pending"}
    gate = ReviewItem.objects.get(run=run)
    assert (gate.kind, gate.step.key, gate.cause) == ("step_gate", "g", "low_confidence")  # type: ignore[union-attr]
    assert "below 0.6" in gate.reason_opened
    # A worker that picks it up meanwhile does nothing and opens no second item.
    assert run_execute(run_id=run.pk) == RunStatus.AWAITING_APPROVAL
    assert ReviewItem.objects.filter(run=run).count() == 1


def test_approving_the_gate_resumes_the_run_through_a_worker(
    deploy: Tool, reviewer: User, key: str, calls: list[str]
) -> None:
    run = submit(gated_plan(key))
    run_execute(run_id=run.pk)
    gate = ReviewItem.objects.get(run=run)
    review_approve(item_id=gate.pk, user=reviewer, checklist=all_ticks(gate))
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert calls[2:] == ["g", "h"]
    assert ReviewItem.objects.filter(run=run).count() == 1  # the decided gate is not reopened


def test_rejecting_the_gate_skips_the_step_and_what_needs_it(
    deploy: Tool, reviewer: User, key: str, calls: list[str]
) -> None:
    run = submit(gated_plan(key))
    run_execute(run_id=run.pk)
    gate = ReviewItem.objects.get(run=run)
    review_reject(item_id=gate.pk, user=reviewer, reason="wrong target")
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert statuses(run) == {"i": "succeeded", "j": "succeeded", "g": "skipped", "h": "skipped"}
    assert "g" not in calls


def test_confident_steps_and_harmless_tools_never_gate(
    deploy: Tool, key: str, calls: list[str]
) -> None:
    run = submit(
        {
            "steps": [
                step("g", "deploy", key, confidence=0.9),
                step("r", "record", key, confidence=0.1),  # not sensitive
            ]
        }
    )
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert not ReviewItem.objects.filter(run=run).exists()


def test_the_threshold_comes_from_the_tools_policy(
    deploy: Tool, key: str, calls: list[str]
) -> None:
    ApprovalPolicy.objects.create(tool=deploy, mode="never", confidence_threshold=0.2)
    run = submit(gated_plan(key, confidence=0.3))
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED


def test_a_decision_made_while_other_steps_run_needs_no_park(
    deploy: Tool, reviewer: User, key: str, calls: list[str]
) -> None:
    document = {
        "steps": [
            step("slow", "wait_gate", key, params={"gate": "go"}),
            step("g", "deploy", key, confidence=0.3),
            step("h", "record", key, ("g",)),
        ]
    }
    run = submit(document)
    outcome: list[str] = []

    def execute() -> None:
        try:
            outcome.append(run_execute(run_id=run.pk))
        finally:
            connection.close()

    worker = threading.Thread(target=execute)
    worker.start()
    try:
        for _ in range(400):
            gate = ReviewItem.objects.filter(run=run).first()
            if gate is not None:
                break
            time.sleep(0.01)
        assert gate is not None, "the gate opened while the slow step was still running"
        assert "slow" not in [c.split(":")[-1] for c in calls if c.startswith("end:")]
        review_approve(item_id=gate.pk, user=reviewer, checklist=all_ticks(gate))
    finally:
        toolbox._opened[key].add("go")
        worker.join(10)
    assert outcome == [RunStatus.SUCCEEDED]
    assert not TranscriptEvent.objects.filter(
        run=run, kind="run.status", payload__to_status="awaiting_approval"
    ).exists()


def referencing_gate(key: str) -> dict:
    """g (gated) deploys to the path i's result names."""
    return {
        "steps": [
            step("i", "record", key),
            step(
                "g",
                "deploy",
                key,
                ("i",),
                confidence=0.3,
                params={"value": "{{steps.i.result.path}}"},
            ),
        ]
    }


def test_a_gate_binds_to_the_params_as_they_will_run(
    deploy: Tool, reviewer: User, key: str, calls: list[str]
) -> None:
    run = submit(referencing_gate(key))
    assert run_execute(run_id=run.pk) == RunStatus.AWAITING_APPROVAL
    gate = ReviewItem.objects.get(run=run)
    rendered = {"key": key, "label": "g", "value": "/backups/i.db"}
    assert gate.context["params"] == rendered
    assert gate.params_hash == content_hash(rendered)
    audit = AuditEntry.objects.get(item_id=gate.pk, action="review.opened")
    assert audit.after["params_hash"] == gate.params_hash
    # A decision about other params is stale, and so is one after the params changed.
    with pytest.raises(StalePlan):
        review_approve(
            item_id=gate.pk,
            user=reviewer,
            binding=Binding(params_hash=content_hash({**rendered, "value": "/prod"})),
            checklist=all_ticks(gate),
        )
    Step.objects.filter(run=run, key="i").update(result={"path": "/backups/prod.db"})
    with pytest.raises(StalePlan, match="other params than when its gate opened"):
        review_approve(
            item_id=gate.pk,
            user=reviewer,
            binding=Binding(params_hash=gate.params_hash),
            checklist=all_ticks(gate),
        )
    gate.refresh_from_db()
    assert gate.status == "open" and gate.approvals.count() == 0
    # Rejecting such a gate is still possible: the step is skipped, never run.
    review_reject(
        item_id=gate.pk, user=reviewer, reason="params moved", binding=Binding(plan_version=1)
    )
    work()
    assert "g" not in calls and statuses(run)["g"] == "skipped"


def test_an_approved_gate_runs_the_params_the_reviewer_saw(
    deploy: Tool, reviewer: User, key: str, calls: list[str]
) -> None:
    run = submit(referencing_gate(key))
    run_execute(run_id=run.pk)
    gate = ReviewItem.objects.get(run=run)
    review_approve(
        item_id=gate.pk,
        user=reviewer,
        binding=Binding(plan_version=1, params_hash=gate.params_hash),
        checklist=all_ticks(gate),
    )
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and calls == ["i", "g"]
    assert Step.objects.get(run=run, key="g").result["value"] == gate.context["params"]["value"]
    entry = AuditEntry.objects.get(item_id=gate.pk, action="review.approved")
    assert entry.after["params_hash"] == gate.params_hash


def test_an_approval_does_not_carry_over_to_params_that_changed_before_the_step_ran(
    deploy: Tool, reviewer: User, key: str, calls: list[str]
) -> None:
    run = submit(referencing_gate(key))
    run_execute(run_id=run.pk)
    gate = ReviewItem.objects.get(run=run)
    review_approve(
        item_id=gate.pk,
        user=reviewer,
        binding=Binding(plan_version=1, params_hash=gate.params_hash),
        checklist=all_ticks(gate),
    )
    # Between the approval and the run, the result the params point at is replaced.
    Step.objects.filter(run=run, key="i").update(result={"path": "/backups/prod.db"})
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL and calls == ["i"]
    again = ReviewItem.objects.get(run=run, status="open")
    assert again.pk != gate.pk and again.step_id == gate.step_id
    assert again.context["params"]["value"] == "/backups/prod.db"
    assert again.params_hash != gate.params_hash
    review_approve(
        item_id=again.pk,
        user=reviewer,
        binding=Binding(plan_version=1, params_hash=again.params_hash),
        checklist=all_ticks(again),
    )
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and calls == ["i", "g"]
    assert Step.objects.get(run=run, key="g").result["value"] == "/backups/prod.db"
