"""tools.yaml: parsing with every problem listed, atomic upsert import, round-trip export."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from runs.models import Tool
from runs.tools.yaml_io import ToolsYamlError, tools_from_yaml, tools_import, tools_to_yaml

EXAMPLE = """
tools:
  - name: backup_database
    description: Copy the database file to a timestamped backup.
    parameters:
      - {name: db, type: string, required: true, description: "Path of the database"}
      - {name: label, type: string, pattern: "^[a-z]+$", default: nightly}
      - {name: keep, type: integer, minimum: 1, maximum: 30}
    script:
      argv: ["{python}", "{base_dir}/runs/demo/scripts/backup.py", "--db={db}", "--label", "{label}"]
      cwd: "{sandbox}"
      output: json
    timeout: 30
    sensitive: false
    idempotent: true
    max_retries: 3
    enabled: true
  - name: notify
    script:
      shell: |
        echo "$PARAM_MESSAGE" >> outbox.txt
    parameters:
      - {name: message, type: string, required: true}
  - name: create_ticket
    parameters:
      - {name: title, type: string, required: true}
    script:
      http: {method: POST, url: "http://127.0.0.1:9/tickets", body: {title: "{title}"}}
  - name: echo
    script: {python: runs.tools.builtin.echo}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ToolsYamlError) as caught:
        tools_from_yaml(textwrap.dedent(text))
    return caught.value.problems


def test_a_tools_file_becomes_drafts_with_object_schemas() -> None:
    backup, notify, ticket, echo = tools_from_yaml(EXAMPLE)
    assert backup.name == "backup_database"
    assert backup.kind == "shell"
    assert backup.config["output"] == "json"
    assert backup.parameters_schema == {
        "type": "object",
        "properties": {
            "db": {"type": "string", "description": "Path of the database"},
            "label": {"type": "string", "default": "nightly", "pattern": "^[a-z]+$"},
            "keep": {"type": "integer", "minimum": 1, "maximum": 30},
        },
        "required": ["db"],
        "additionalProperties": False,
    }
    assert (backup.timeout_seconds, backup.max_retries, backup.idempotent) == (30.0, 3, True)
    assert notify.kind == "shell"
    assert notify.config == {"shell": 'echo "$PARAM_MESSAGE" >> outbox.txt\n'}
    assert (notify.timeout_seconds, notify.max_retries, notify.enabled) == (60.0, 2, True)
    assert ticket.kind == "http"
    assert ticket.config["body"] == {"title": "{title}"}
    assert echo.kind == "python"
    assert echo.config == {"callable": "runs.tools.builtin.echo"}
    assert echo.parameters_schema["properties"] == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tools: [{script: {python: runs.tools.builtin.echo}}]", "tools[0]: name is required"),
        (
            "tools: [{name: 'bad name', script: {python: runs.tools.builtin.echo}}]",
            "tools[0] (bad name).name: use letters",
        ),
        (
            """
            tools:
              - {name: a, script: {python: runs.tools.builtin.echo}}
              - {name: a, script: {python: runs.tools.builtin.noop}}
            """,
            "tools[1] (a): duplicate name, also at tools[0]",
        ),
        (
            "tools: [{name: a, parameters: [{name: x, type: str}], script: {python: a.b}}]",
            "tools[0] (a).parameters[0] (x).type: 'str' is not one of string, integer",
        ),
        (
            "tools: [{name: a, parameters: [{name: x}], script: {python: runs.tools.builtin.echo}}]",
            "tools[0] (a).parameters[0] (x): type is required",
        ),
        (
            "tools: [{name: a, colour: red, script: {python: runs.tools.builtin.echo}}]",
            "tools[0] (a): unknown key 'colour'",
        ),
        (
            """
            tools:
              - name: a
                parameters: [{name: x, type: string, secret: true}]
                script: {python: runs.tools.builtin.echo}
            """,
            "tools[0] (a).parameters[0] (x): unknown key 'secret'",
        ),
        (
            """
            tools:
              - name: a
                parameters: [{name: x, type: string}, {name: x, type: integer}]
                script: {python: runs.tools.builtin.echo}
            """,
            "tools[0] (a).parameters[1] (x): duplicate parameter name",
        ),
        (
            "tools: [{name: a, script: {argv: [ls], shell: ls}}]",
            "tools[0] (a).script: has more than one script kind (argv, shell); pick one",
        ),
        ("tools: [{name: a, script: {cwd: /tmp}}]", "tools[0] (a).script: needs one of argv"),
        ("tools: [{name: a}]", "tools[0] (a).script: required"),
        (
            "tools: [{name: a, script: {argv: [ls], stdin: x}}]",
            "tools[0] (a).script: unknown key 'stdin'",
        ),
        (
            "tools: [{name: a, script: {python: runs.tools.builtin.echo, cwd: /tmp}}]",
            "tools[0] (a).script: python takes no sibling keys (cwd)",
        ),
        (
            """
            tools:
              - name: a
                parameters: [{name: db, type: string}]
                script: {shell: 'cp {db} /backups'}
            """,
            "tools[0] (a).script: shell text must not contain placeholders",
        ),
        (
            "tools: [{name: a, script: {argv: [ls, '{nope}']}}]",
            "tools[0] (a).script: argv[1] uses {nope}, which is not a parameter",
        ),
        (
            "tools: [{name: a, script: {http: {url: 'http://{host}/x'}}}]",
            "tools[0] (a).script: url must not take its host",
        ),
        (
            "tools: [{name: a, script: {python: no_such_module.func}}]",
            "tools[0] (a).script: cannot import 'no_such_module.func'",
        ),
        (
            """
            tools:
              - name: a
                parameters: [{name: n, type: integer, minimum: ten}]
                script: {python: runs.tools.builtin.echo}
            """,
            "tools[0] (a).parameters: properties/n/minimum: 'ten' is not of type 'number'",
        ),
        (
            """
            tools:
              - name: a
                parameters: [{name: n, type: integer, default: lots}]
                script: {python: runs.tools.builtin.echo}
            """,
            "tools[0] (a).parameters (n).default: 'lots' is not of type 'integer'",
        ),
        (
            """
            tools:
              - name: a
                parameters_schema: {type: array}
                script: {python: runs.tools.builtin.echo}
            """,
            'tools[0] (a).parameters_schema: the parameters schema must have "type": "object"',
        ),
        (
            "tools: [{name: a, timeout: 0, script: {python: runs.tools.builtin.echo}}]",
            "tools[0] (a).timeout: must be a number of seconds above 0",
        ),
        (
            "tools: [{name: a, idempotent: 'yes please', script: {python: runs.tools.builtin.echo}}]",
            "tools[0] (a).idempotent: must be true or false",
        ),
        (
            "tools: [{name: a, max_retries: -1, script: {python: runs.tools.builtin.echo}}]",
            "tools[0] (a).max_retries: must be a whole number",
        ),
        ("tools: [a, b", "(file): line 2, column 1: invalid YAML"),
        ("- name: a", "(file): expected a mapping with a 'tools:' list"),
        ("tools: []\nversion: 2", "(file): unknown key 'version'"),
    ],
)
def test_each_kind_of_problem_is_reported_with_its_path(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_in_a_file_is_listed_not_just_the_first() -> None:
    problems = problems_of(
        """
        tools:
          - name: good
            script: {python: runs.tools.builtin.echo}
          - description: no name
            script: {python: runs.tools.builtin.echo}
          - name: good
            parameters: [{name: x, type: text}]
            script: {argv: [ls], http: {url: "http://x/"}}
          - name: slow
            timeout: -5
            script: {shell: "echo {x}"}
        """
    )
    assert problems == [
        "tools[1]: name is required",
        "tools[2] (good): duplicate name, also at tools[0]",
        "tools[2] (good).parameters[0] (x).type: 'text' is not one of "
        "string, integer, number, boolean, array, object",
        "tools[2] (good).script: has more than one script kind (argv, http); pick one",
        "tools[3] (slow).script: shell text must not contain placeholders ('{x}'): the script "
        'is fixed; read a parameter from the environment instead, e.g. "$db" or "$PARAM_DB"',
        "tools[3] (slow).timeout: must be a number of seconds above 0, not -5",
    ]


def test_import_creates_then_updates_then_leaves_unchanged(db: None) -> None:
    report = tools_import(text=EXAMPLE)
    assert report.created == ["backup_database", "notify", "create_ticket", "echo"]
    assert Tool.objects.get(name="backup_database").max_retries == 3

    again = tools_import(text=EXAMPLE)
    assert again.unchanged == report.created
    assert again.created == again.updated == again.disabled == []

    edited = tools_import(text=EXAMPLE.replace("max_retries: 3", "max_retries: 1"))
    assert edited.updated == ["backup_database"]
    assert Tool.objects.get(name="backup_database").max_retries == 1


def test_import_of_missing_tools_only_leaves_existing_ones_as_they_are(db: None) -> None:
    tools_import(text=EXAMPLE)
    Tool.objects.filter(name="echo").delete()
    Tool.objects.filter(name="backup_database").update(max_retries=7)
    report = tools_import(text=EXAMPLE, missing_only=True)
    assert report.created == ["echo"]
    assert report.kept == ["backup_database", "notify", "create_ticket"]
    assert report.updated == report.unchanged == []
    assert Tool.objects.get(name="backup_database").max_retries == 7


def test_a_file_with_one_bad_tool_writes_nothing(db: None) -> None:
    Tool.objects.create(name="echo", kind="python", config={"callable": "runs.tools.builtin.noop"})
    bad = EXAMPLE + "  - {name: broken, script: {python: 'no_such_module.f'}}\n"
    with pytest.raises(ToolsYamlError, match="broken"):
        tools_import(text=bad)
    assert list(Tool.objects.values_list("name", "config")) == [
        ("echo", {"callable": "runs.tools.builtin.noop"})
    ]


def test_replace_disables_enabled_tools_missing_from_the_file(db: None) -> None:
    for name, enabled in (("old", True), ("retired", False), ("echo", False)):
        Tool.objects.create(name=name, kind="python", config={"callable": "x.y"}, enabled=enabled)
    report = tools_import(text=EXAMPLE, replace=True)
    assert report.disabled == ["old"]
    assert report.updated == ["echo"]  # the file says enabled (by default) and a new callable
    assert dict(Tool.objects.values_list("name", "enabled")) == {
        "backup_database": True,
        "notify": True,
        "create_ticket": True,
        "echo": True,
        "old": False,
        "retired": False,
    }


def test_without_replace_tools_missing_from_the_file_stay_as_they_are(db: None) -> None:
    Tool.objects.create(name="old", kind="python", config={"callable": "x.y"})
    assert tools_import(text=EXAMPLE).disabled == []
    assert Tool.objects.get(name="old").enabled is True


def test_export_then_import_changes_nothing(db: None) -> None:
    tools_import(text=EXAMPLE)
    # Rows made elsewhere (admin, code) with shapes a parameter list cannot express.
    Tool.objects.create(
        name="free_schema",
        kind="python",
        config={"callable": "runs.tools.builtin.echo"},
        parameters_schema={"type": "object", "properties": {"a": {"type": ["string", "null"]}}},
        timeout_seconds=2.5,
        sensitive=True,
        honours_idempotency_key=True,
        enabled=False,
    )
    Tool.objects.create(
        name="bare",
        kind="python",
        config={"callable": "runs.tools.builtin.noop"},
        parameters_schema={"type": "object"},
    )
    before = {t.name: _fields(t) for t in Tool.objects.all()}
    exported = tools_to_yaml(Tool.objects.all())

    report = tools_import(text=exported)
    assert sorted(report.unchanged) == sorted(before)
    assert report.created == report.updated == []
    assert {t.name: _fields(t) for t in Tool.objects.all()} == before
    assert tools_to_yaml(Tool.objects.all()) == exported


def test_export_reads_like_the_hand_written_file(db: None) -> None:
    tools_import(text=EXAMPLE)
    exported = yaml.safe_load(tools_to_yaml(Tool.objects.filter(name="backup_database")))
    (entry,) = exported["tools"]
    assert entry["parameters"][0] == {
        "name": "db",
        "type": "string",
        "required": True,
        "description": "Path of the database",
    }
    assert entry["script"]["argv"][0] == "{python}"
    assert entry["timeout"] == 30


def test_honours_idempotency_key_is_read_and_written_only_when_set(db: None) -> None:
    text = (
        "tools:\n  - name: deploy\n    script: {python: runs.tools.builtin.echo}\n"
        "    honours_idempotency_key: true\n"
    )
    tools_import(text=text)
    assert Tool.objects.get(name="deploy").honours_idempotency_key is True
    assert "honours_idempotency_key: true" in tools_to_yaml(Tool.objects.all())
    Tool.objects.update(honours_idempotency_key=False)
    assert "honours_idempotency_key" not in tools_to_yaml(Tool.objects.all())
    bad = text.replace("true", "sometimes")
    with pytest.raises(ToolsYamlError, match="honours_idempotency_key: must be true or false"):
        tools_from_yaml(bad)


def test_an_empty_tools_list_with_replace_disables_everything(db: None) -> None:
    Tool.objects.create(name="old", kind="python", config={"callable": "x.y"})
    assert tools_import(text="tools: []", replace=True).disabled == ["old"]


def _fields(tool: Tool) -> tuple[object, ...]:
    return (
        tool.description,
        tool.kind,
        tool.config,
        tool.parameters_schema,
        tool.timeout_seconds,
        tool.max_retries,
        tool.sensitive,
        tool.idempotent,
        tool.read_only,
        tool.honours_idempotency_key,
        tool.enabled,
    )


def test_read_only_is_imported_exported_and_checked(db: None) -> None:
    text = "tools: [{name: look, read_only: true, script: {python: runs.tools.builtin.echo}}]"
    tools_import(text=text)
    assert Tool.objects.get(name="look").read_only is True
    exported = yaml.safe_load(tools_to_yaml(Tool.objects.all()))
    assert exported["tools"][0]["read_only"] is True
    with pytest.raises(ToolsYamlError, match=r"read_only: must be true or false"):
        tools_from_yaml(text.replace("read_only: true", "read_only: maybe"))


def test_a_tools_locks_are_read_checked_and_written_back(db: None) -> None:
    text = textwrap.dedent(
        """
        tools:
          - name: deploy
            parameters:
              - {name: environment, type: string, required: true}
            script: {python: runs.tools.builtin.echo}
            locks: ["env:{{ params.environment }}"]
        """
    )
    tools_import(text=text)
    tool = Tool.objects.get(name="deploy")
    assert tool.locks == ["env:{{ params.environment }}"]
    assert yaml.safe_load(tools_to_yaml([tool]))["tools"][0]["locks"] == tool.locks
    with pytest.raises(ToolsYamlError, match=r"\(deploy\)\.locks: .*only"):
        tools_from_yaml(text.replace("params.environment", "steps.x.result"))
