"""manage.py tools_export: to stdout or a file that imports back unchanged."""

from __future__ import annotations

from pathlib import Path

from tests.runs.management.commands.test_tools_import import FILE, run


def test_export_writes_stdout_or_a_file_that_imports_back_unchanged(
    db: None, tmp_path: Path
) -> None:
    source = tmp_path / "tools.yaml"
    source.write_text(FILE)
    run("tools_import", str(source))
    printed = run("tools_export")
    assert "name: list_sandbox" in printed
    target = tmp_path / "exported.yaml"
    assert run("tools_export", "-o", str(target)) == f"wrote 2 tool(s) to {target}\n"
    assert target.read_text() == printed
    assert "unchanged: 2" in run("tools_import", str(target))
