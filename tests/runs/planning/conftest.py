"""Planner test fixtures: a small tool registry and fast SDK settings."""

from __future__ import annotations

from typing import Any

import pytest

from runs.models import Tool

RECORD_SCHEMA = {
    "type": "object",
    "properties": {"key": {"type": "string"}, "label": {"type": "string"}, "value": {}},
    "required": ["key", "label"],
    "additionalProperties": False,
}


@pytest.fixture
def planner_settings(settings: Any) -> Any:
    settings.PLANNERWEB_PLANNER_TIMEOUT_SECONDS = 5.0
    settings.PLANNERWEB_PLANNER_SDK_RETRIES = 2
    settings.PLANNERWEB_PLANNER_REPAIR_ROUNDS = 2
    settings.PLANNERWEB_RETRY_BACKOFF_SECONDS = 0.01
    settings.PLANNERWEB_HEARTBEAT_SECONDS = 0.05
    return settings


@pytest.fixture
def planner_tools(db: None) -> list[Tool]:
    """record (python, never fails), fail (python, always fails), and a disabled tool."""
    return [
        Tool.objects.create(
            name="record",
            description="Record a label (test tool).",
            kind=Tool.Kind.PYTHON,
            config={"callable": "tests.runs.toolbox.record"},
            parameters_schema=RECORD_SCHEMA,
            timeout_seconds=10,
        ),
        Tool.objects.create(
            name="fail",
            description="Always fails (test tool).",
            kind=Tool.Kind.PYTHON,
            config={"callable": "tests.runs.toolbox.fail"},
            parameters_schema={
                "type": "object",
                "properties": {"key": {"type": "string"}, "label": {"type": "string"}},
            },
            timeout_seconds=10,
        ),
        Tool.objects.create(
            name="secret_tool",
            description="Disabled.",
            kind=Tool.Kind.PYTHON,
            config={"callable": "tests.runs.toolbox.record"},
            parameters_schema={"type": "object"},
            enabled=False,
        ),
    ]


def good_plan(key: str = "k", *, confidence: float | None = 0.9) -> dict[str, Any]:
    step: dict[str, Any] = {"id": "a", "action": "record", "params": {"key": key, "label": "a"}}
    second: dict[str, Any] = {
        "id": "b",
        "action": "record",
        "params": {"key": key, "label": "b"},
        "depends_on": ["a"],
    }
    if confidence is not None:
        step["confidence"] = confidence
        second["confidence"] = confidence
    return {"goal": "record two labels", "steps": [step, second], "rollback": []}
