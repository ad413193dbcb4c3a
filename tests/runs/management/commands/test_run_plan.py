"""manage.py run_plan: the live status line, and what an invalid plan leaves behind."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from runs.models import Tool

pytestmark = pytest.mark.django_db(transaction=True)

NUMBERED = """goal: say hello, then check it
steps:
  - id: 1
    action: noop
  - id: 2
    action: echo
    description: check the hello
    depends_on: [1]
"""


@pytest.fixture
def hello_tools(db: None) -> None:
    for name in ("noop", "echo"):
        Tool.objects.create(
            name=name, kind="python", config={"callable": "runs.tools.builtin.noop"}
        )


def test_the_status_line_names_the_action_of_steps_whose_ids_are_numbers(
    hello_tools: None, tmp_path: Path
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(NUMBERED)
    out = StringIO()
    call_command("run_plan", str(path), "--wait", "--poll", "0.01", stdout=out)
    lines = out.getvalue().splitlines()
    assert "[1] ✓ noop [2] ✓ echo" in lines
    assert not any("✓ 1" in line for line in lines)


def test_the_status_line_keeps_ids_that_say_something(hello_tools: None, tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(NUMBERED.replace("id: 1", "id: greet").replace("[1]", "[greet]"))
    out = StringIO()
    call_command("run_plan", str(path), "--wait", "--poll", "0.01", stdout=out)
    assert "[1] ✓ greet [2] ✓ echo" in out.getvalue().splitlines()
