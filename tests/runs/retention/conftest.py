"""Finished runs of any age, each with a transcript, step results, a model call event and answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from reviews.audit import audit_record
from runs.events import PlannerCall
from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import ModelAnswer, Run, Task
from runs.statemachine import NewEvent, append_events


@pytest.fixture
def aged_run(execute: Callable[..., Run], key: str, fast_settings: Any) -> Callable[..., Run]:
    """A succeeded run of two steps that finished ``days`` ago, with an audit entry of its own."""

    def make(days: int, *, retain_days: int | None = None) -> Run:
        run = run_submit_plan(
            title=f"finished {days} days ago",
            document={
                "goal": "two records",
                "steps": [
                    {"id": "a", "action": "record", "params": {"key": key, "label": "a"}},
                    {
                        "id": "b",
                        "action": "record",
                        "params": {"key": key, "label": "b"},
                        "depends_on": ["a"],
                    },
                ],
            },
            submitted_by=None,
        )
        run_execute(run_id=run.pk)
        append_events(
            run.pk,
            [
                NewEvent(
                    "planner",
                    PlannerCall(
                        provider="openai",
                        model="m",
                        purpose="plan",
                        prompt=[{"role": "user", "content": "plan the two records"}],
                        response='{"goal": "two records"}',
                    ),
                )
            ],
        )
        ModelAnswer.objects.create(
            run=run, provider="openai", path="responses", key="0" * 64, status=200, body={}
        )
        audit_record(
            actor=None, action="run.noted", object_type="run", object_id=run.pk, run_id=run.pk
        )
        Run.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days))
        if retain_days is not None:
            Task.objects.filter(runs=run).update(retain_days=retain_days)
        run.refresh_from_db()
        assert run.status == "succeeded", run.stop_reason
        return run

    return make
