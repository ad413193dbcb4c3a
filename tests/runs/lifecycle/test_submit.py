"""Submitting a hand-written plan: what is stored is redacted, and still a valid plan."""

from __future__ import annotations

import pytest

from runs.lifecycle.submit import run_submit_plan
from runs.models import Plan, Step
from runs.planning.validation import validate_with_registry

pytestmark = pytest.mark.django_db


def test_a_stored_plan_is_redacted_but_for_the_ids_that_tie_its_steps_together(
    toolset: None, key: str
) -> None:
    document = {
        "goal": "tell alice@example.com",
        "steps": [
            {
                "id": "20261204",
                "action": "record",
                "params": {"key": key, "label": "+1 555 010 2030"},
            },
            {
                "id": "b",
                "action": "record",
                "params": {"key": key, "label": "alice@example.com"},
                "depends_on": ["20261204"],
                "description": "again alice@example.com",
            },
        ],
    }
    run = run_submit_plan(
        title="mail alice@example.com", description="", document=document, submitted_by=None
    )
    plan = Plan.objects.get(run=run)
    assert plan.goal == "tell [REDACTED:email:1]"
    stored = plan.document
    assert [s["id"] for s in stored["steps"]] == ["20261204", "b"]
    assert stored["steps"][1]["depends_on"] == ["20261204"]
    assert stored["steps"][0]["params"]["label"] == "[REDACTED:phone:1]"
    assert stored["steps"][1]["params"]["label"] == "[REDACTED:email:1]"
    assert validate_with_registry(stored).is_valid  # a retry or an edit starts from it
    steps = {s.key: s for s in Step.objects.filter(run=run)}
    assert steps["b"].description == "again [REDACTED:email:1]"
    assert run.task.title == "mail [REDACTED:email:1]"
