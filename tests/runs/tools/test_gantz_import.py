"""The seed's gantz.yaml imports as it is: ``{{param}}`` placeholders become quoted variables."""

from __future__ import annotations

import asyncio
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from reviews.models import AuditEntry
from runs.models import Tool
from runs.tools.base import ToolSpec
from runs.tools.kinds.shell import invoke
from runs.tools.kinds.shell.placeholders import PlaceholderError, convert
from runs.tools.yaml_io import ToolsYamlError, tools_import
from tests.runs.api.conftest import api_as

GANTZ = Path(__file__).with_name("gantz.yaml")


@pytest.mark.django_db
def test_the_seeds_four_tools_import_with_the_placeholder_converted() -> None:
    out = StringIO()
    call_command("tools_import", str(GANTZ), stdout=out)
    tools = {t.name: t for t in Tool.objects.all()}
    assert set(tools) == {"read_schema", "backup_database", "run_migration", "verify_integrity"}
    assert tools["run_migration"].config == {"shell": 'psql mydb < "$PARAM_FILE"'}
    assert tools["run_migration"].parameters_schema["required"] == ["file"]
    assert tools["backup_database"].config == {"shell": "pg_dump mydb > backup_$(date +%Y%m%d).sql"}
    report = out.getvalue()
    assert "created: 4" in report
    assert 'run_migration: psql mydb < {{file}}  ->  psql mydb < "$PARAM_FILE"' in report
    assert AuditEntry.objects.filter(object_type="tool").count() == 4


@pytest.mark.django_db
def test_a_converted_script_gets_hostile_values_as_plain_data(tmp_path: Path) -> None:
    tools_import(
        text=(
            "tools:\n  - name: show\n    parameters: [{name: file, type: string}]\n"
            "    script: {shell: 'cat < {{file}}; echo \"of {{file}}\"'}\n"
        )
    )
    tool = Tool.objects.get(name="show")
    target = tmp_path / "a file; $(touch pwned)"
    target.write_text("contents\n")
    result = asyncio.run(invoke(ToolSpec.from_model(tool), {"file": str(target)}))
    assert result["stdout"] == f"contents\nof {target}\n"
    assert not (Path.cwd() / "pwned").exists() and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("script", "why"),
    [
        ("echo '{{file}}'", "inside single quotes"),
        ("echo $(cat {{file}})", r"inside \$\(...\) or backticks"),
        ("echo `cat {{file}}`", r"inside \$\(...\) or backticks"),
        ("{{file}} --force", "place of a command name"),
        ("cd /tmp && {{file}}", "place of a command name"),
        ("echo {{other}}", "not a parameter"),
        ("echo {{file", "not a placeholder"),
    ],
)
def test_a_placeholder_quoting_cannot_make_safe_is_refused(script: str, why: str) -> None:
    with pytest.raises(PlaceholderError, match=why):
        convert(script, {"file"})


def test_quoting_follows_the_context() -> None:
    assert convert('echo "to {{file}}.bak" {{file}}', {"file"}) == (
        'echo "to ${PARAM_FILE}.bak" "$PARAM_FILE"'
    )
    assert convert("X=1 cp {{file}} b_{{file}}", {"file"}) == (
        'X=1 cp "$PARAM_FILE" b_"$PARAM_FILE"'
    )
    assert convert("echo 'it is' {{file}} # {{file}}", {"file"}).startswith(
        "echo 'it is' \"$PARAM_FILE\""
    )


@pytest.mark.django_db
def test_a_refused_placeholder_imports_nothing_and_says_how_to_write_it(tmp_path: Path) -> None:
    text = (
        "tools:\n  - name: ok\n    script: {shell: 'true'}\n"
        "  - name: bad\n    parameters: [{name: file, type: string}]\n"
        "    script: {shell: \"echo '{{file}}'\"}\n"
    )
    with pytest.raises(ToolsYamlError) as failure:
        tools_import(text=text)
    assert failure.value.problems == [
        "tools[1] (bad).script.shell: {{file}} is inside single quotes, where the shell expands "
        "nothing: close the quotes around it, e.g. 'text '{{file}}' more'"
    ]
    assert not Tool.objects.exists()
    (tmp_path / "gantz.yaml").write_text(text)
    with pytest.raises(CommandError, match="nothing imported"):
        call_command("tools_import", str(tmp_path / "gantz.yaml"))


@pytest.mark.django_db
def test_the_api_import_reports_the_converted_scripts(admin_user: User) -> None:
    api = api_as(admin_user)
    response = api.post("/tools.yaml", {"text": GANTZ.read_text(), "replace": False})
    assert response.status_code == 200, response.json()
    assert response.json()["converted"] == [
        {
            "name": "run_migration",
            "file_script": "psql mydb < {{file}}",
            "stored_script": 'psql mydb < "$PARAM_FILE"',
        }
    ]
