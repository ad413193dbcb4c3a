"""A finished run with secrets and personal data in it, submitted by a named operator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run

SECRET = "sk-ant-" + "a1B2c3D4e5F6g7H8i9J0kLmN"
EMAIL = "dana.private@corp.example"


@pytest.fixture
def finished_run(execute: Callable[..., Run], operator: User, key: str, fast_settings: Any) -> Run:
    """A failed run of two plan steps: one recorded a value with a secret and an email, one failed."""
    document = {
        "goal": f"Back up and notify {EMAIL}",
        "steps": [
            {
                "id": "backup",
                "action": "record",
                "params": {"key": key, "label": "backup", "value": f"{SECRET} for {EMAIL}"},
            },
            {
                "id": "notify",
                "action": "fail",
                "params": {"key": key, "label": "notify"},
                "depends_on": ["backup"],
            },
        ],
    }
    run = run_submit_plan(
        title="Nightly backup",
        description=f"Write to {EMAIL} when done",
        document=document,
        submitted_by=operator,
    )
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "failed", run.stop_reason
    return run
