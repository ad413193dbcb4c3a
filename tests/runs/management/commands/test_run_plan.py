"""manage.py run_plan: the live status line, and what an invalid plan leaves behind."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from runs.models import Plan, Run, Task, Tool, TranscriptEvent

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


INVALID = """steps:
  - {id: a, action: launch_rockets}
  - {id: a, action: noop}
  - {id: b, action: noop, depends_on: [ghost]}
"""


def test_an_invalid_plan_prints_every_problem_with_its_path_exits_2_and_writes_nothing(
    hello_tools: None, tmp_path: Path
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(INVALID)
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("run_plan", str(path), "--wait", stdout=out, stderr=err)
    for model in (Task, Run, Plan, TranscriptEvent):
        assert not model.objects.exists(), model.__name__
    assert caught.value.returncode == 2 and "nothing was created" in str(caught.value)
    head, *problems = err.getvalue().splitlines()
    assert head == f"{path}: the plan has {len(problems)} problems:" and len(problems) >= 3
    paths = {line.split(": ", 1)[0] for line in problems}
    assert {"  - steps[0].action", "  - steps[1].id", "  - steps[2].depends_on[0]"} <= paths
    assert "launch_rockets" in err.getvalue() and "ghost" in err.getvalue()
    assert out.getvalue() == ""


def test_planner_names_the_replanner_of_the_plan(hello_tools: None, tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(NUMBERED)
    call_command(
        "run_plan", str(path), "--planner", "playbook", "--max-replans", "2", stdout=StringIO()
    )
    task = Task.objects.get()
    assert (task.planner, task.mode, task.max_replans) == ("playbook", "upfront", 2)
    with pytest.raises(CommandError, match="--planner"):
        call_command("run_plan", str(path), "--max-replans", "2", stdout=StringIO())
    assert Task.objects.count() == 1


def test_plan_text_beyond_the_limits_is_a_command_error(hello_tools: None, tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("steps:\n- {id: a, action: noop, params: {n: " + "9" * 5000 + "}}\n")
    with pytest.raises(CommandError, match="more than 100 digits"):
        call_command("run_plan", str(path))


@pytest.mark.parametrize("value", ["0", "-3", "257"])
def test_max_parallel_outside_the_apis_range_is_refused_saying_the_range_and_writes_nothing(
    hello_tools: None, tmp_path: Path, value: str
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(NUMBERED)
    with pytest.raises(CommandError, match="--max-parallel must be between 1 and 256") as caught:
        call_command("run_plan", str(path), "--max-parallel", value, stdout=StringIO())
    assert f"not {value}" in str(caught.value)
    for model in (Task, Run, Plan, TranscriptEvent):
        assert not model.objects.exists(), model.__name__


def test_max_parallel_inside_the_range_is_kept(hello_tools: None, tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(NUMBERED)
    call_command("run_plan", str(path), "--max-parallel", "256", stdout=StringIO())
    assert Run.objects.get().max_parallel == 256


@pytest.mark.usefixtures("no_openai_key")
def test_a_replanner_without_its_key_is_refused_saying_what_to_set_and_writes_nothing(
    hello_tools: None, tmp_path: Path
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(NUMBERED)
    with pytest.raises(CommandError, match="set OPENAI_API_KEY"):
        call_command("run_plan", str(path), "--planner", "openai", stdout=StringIO())
    for model in (Task, Run, Plan, TranscriptEvent):
        assert not model.objects.exists(), model.__name__
