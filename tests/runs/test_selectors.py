"""Run reads: the CLI's status line."""

from __future__ import annotations

import pytest

from runs.selectors import RunProgress, StepLine


@pytest.mark.parametrize(
    ("key", "action", "description", "label"),
    [
        ("1", "backup", "copy the database", "backup"),
        ("step-2", "record", "", "record"),
        ("3", "", "copy the database", "copy the database"),
        ("read_schema", "psql", "", "read_schema"),
        ("v2", "deploy", "", "v2"),
    ],
)
def test_a_step_is_named_by_its_id_unless_the_id_is_a_bare_number(
    key: str, action: str, description: str, label: str
) -> None:
    assert StepLine(1, key, "main", "pending", action, description).label == label


def test_the_status_line_shows_each_step_s_mark_and_label() -> None:
    steps = (
        StepLine(1, "1", "main", "succeeded", "noop"),
        StepLine(2, "check", "main", "running", "echo"),
    )
    assert RunProgress(1, "executing", "", steps).line() == "[1] ✓ noop [2] ▶ check"
