"""manage.py tools_import: a summary, replace, every problem of a bad file, a missing file."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from runs.models import Tool

FILE = """
tools:
  - name: echo
    script: {python: runs.tools.builtin.echo}
  - name: list_sandbox
    script: {argv: [ls, "-1"], cwd: "{sandbox}"}
"""


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_import_prints_a_summary(db: None, tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text(FILE)
    assert run("tools_import", str(path)) == (
        "created: 2 (echo, list_sandbox)\nupdated: 0\nunchanged: 0\ndisabled: 0\n"
    )
    assert "unchanged: 2 (echo, list_sandbox)" in run("tools_import", str(path))


def test_import_with_replace_disables_the_others(db: None, tmp_path: Path) -> None:
    Tool.objects.create(name="legacy", kind="python", config={"callable": "x.y"})
    path = tmp_path / "tools.yaml"
    path.write_text(FILE)
    assert "disabled: 1 (legacy)" in run("tools_import", str(path), "--replace")
    assert Tool.objects.get(name="legacy").enabled is False


def test_a_bad_file_prints_every_problem_and_writes_nothing(db: None, tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text(FILE + "  - {name: echo, script: {shell: 'rm {x}'}}\n  - {script: {}}\n")
    with pytest.raises(CommandError) as caught:
        run("tools_import", str(path))
    message = str(caught.value)
    assert "nothing imported, 4 problem(s)" in message
    assert "tools[2] (echo): duplicate name, also at tools[0]" in message
    assert "tools[2] (echo).script: shell text must not contain placeholders" in message
    assert "tools[3]: name is required" in message
    assert "tools[3].script: needs one of argv, shell, http, python, prompt, agent" in message
    assert not Tool.objects.exists()


def test_a_missing_file_is_a_command_error(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        run("tools_import", str(tmp_path / "nope.yaml"))
