"""The admin: staff edit the tool registry through a validating form; nobody else gets in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from runs.models import Run, Task, Tool, TranscriptEvent

TOOLS = "/admin/runs/tool/"


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "backup",
        "description": "Back up a database.",
        "kind": "shell",
        "config": json.dumps({"argv": ["{python}", "backup.py", "--db={db}"]}),
        "parameters_schema": json.dumps(
            {"type": "object", "properties": {"db": {"type": "string"}}, "required": ["db"]}
        ),
        "timeout_seconds": "30",
        "max_retries": "2",
        "enabled": "on",
    }
    data.update(overrides)
    return data


@pytest.fixture(autouse=True)
def _static_root() -> None:
    """WhiteNoise warns (an error here) when STATIC_ROOT is missing, as in a fresh var dir."""
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def admin_client(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


def test_an_admin_opens_the_tool_list_and_add_form(admin_client: Client) -> None:
    Tool.objects.create(name="listed_tool", kind="python", config={"callable": "a.b"})
    listing = admin_client.get(TOOLS)
    assert listing.status_code == 200
    assert b"listed_tool" in listing.content
    assert admin_client.get(TOOLS + "add/").status_code == 200
    assert admin_client.get(TOOLS + "?kind__exact=python&q=listed").status_code == 200


def test_an_admin_adds_a_valid_tool(admin_client: Client) -> None:
    response = admin_client.post(TOOLS + "add/", form_data())
    assert response.status_code == 302, response.context["adminform"].form.errors
    tool = Tool.objects.get(name="backup")
    assert tool.config["argv"][2] == "--db={db}"
    assert tool.parameters_schema["required"] == ["db"]


def test_an_admin_marks_a_tool_as_honouring_idempotency_keys(admin_client: Client) -> None:
    assert b"honours_idempotency_key" in admin_client.get(TOOLS + "add/").content
    response = admin_client.post(TOOLS + "add/", form_data(honours_idempotency_key="on"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Tool.objects.get(name="backup").honours_idempotency_key is True


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"parameters_schema": json.dumps({"type": "array"})}, "parameters_schema", '"object"'),
        (
            {
                "parameters_schema": json.dumps(
                    {"type": "object", "properties": {"db": {"type": 5}}}
                )
            },
            "parameters_schema",
            "properties/db/type",
        ),
        ({"parameters_schema": "{not json"}, "parameters_schema", "Enter a valid JSON"),
        ({"config": '{"n": ' + "9" * 5000 + "}"}, "config", "more than 100 digits"),
        ({"config": "[" * 1500 + "]" * 1500}, "config", "nested more than 100"),
        ({"config": '{"s": "\\u0000"}'}, "config", "NUL"),
        (
            {"config": json.dumps({"shell": "cp {db} /x"})},
            "config",
            "must not contain placeholders",
        ),
        ({"config": json.dumps({"argv": ["ls", "{dbb}"]})}, "config", "{dbb}"),
        (
            {"kind": "python", "config": json.dumps({"callable": "no.such.thing"})},
            "config",
            "import",
        ),
        ({"timeout_seconds": "0"}, "timeout_seconds", "above 0"),
        ({"locks": json.dumps(["env:{{ steps.a.result }}"])}, "locks", "only '{{ params."),
        ({"locks": json.dumps("env:prod")}, "locks", "must be a list"),
    ],
)
def test_the_form_rejects_bad_schemas_and_configs_on_their_fields(
    admin_client: Client, overrides: dict[str, Any], field: str, message: str
) -> None:
    response = admin_client.post(TOOLS + "add/", form_data(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(message in e for e in errors.get(field, [])), errors
    assert not Tool.objects.exists()


def test_an_admin_gives_a_tool_resource_locks(admin_client: Client) -> None:
    locks = ["db:{{ params.db }}"]
    response = admin_client.post(TOOLS + "add/", form_data(locks=json.dumps(locks)))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Tool.objects.get(name="backup").locks == locks


def test_an_admin_can_look_at_runs_but_not_edit_the_transcript(admin_client: Client) -> None:
    run = Run.objects.create(task=Task.objects.create(title="t"))
    event = TranscriptEvent.objects.create(
        run=run, seq=1, role="system", kind="note", payload={}, created_at=run.created_at
    )
    assert admin_client.get("/admin/runs/run/?status__exact=queued").status_code == 200
    assert admin_client.get(f"/admin/runs/run/{run.pk}/change/").status_code == 200
    assert admin_client.get("/admin/runs/transcriptevent/").status_code == 200
    assert admin_client.get("/admin/runs/transcriptevent/add/").status_code == 403
    assert admin_client.get(f"/admin/runs/transcriptevent/{event.pk}/delete/").status_code == 403
    change = admin_client.post(f"/admin/runs/run/{run.pk}/change/", {"status": "succeeded"})
    assert change.status_code == 403
    run.refresh_from_db()
    assert run.status == "queued"


def test_the_export_action_downloads_yaml(admin_client: Client) -> None:
    tool = Tool.objects.create(
        name="echo", kind="python", config={"callable": "runs.tools.builtin.echo"}
    )
    response = admin_client.post(TOOLS, {"action": "export_yaml", "_selected_action": [tool.pk]})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/yaml"
    assert b"python: runs.tools.builtin.echo" in response.content


@pytest.mark.parametrize("who", ["operator", "outsider"])
def test_users_without_staff_cannot_reach_the_admin(
    client: Client, who: str, request: pytest.FixtureRequest
) -> None:
    client.force_login(request.getfixturevalue(who))
    for url in ("/admin/", TOOLS, TOOLS + "add/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    assert client.post(TOOLS + "add/", form_data()).status_code == 302
    assert not Tool.objects.exists()


def test_the_config_help_says_what_each_kind_holds(admin_client: Client) -> None:
    page = admin_client.get(TOOLS + "add/").content.decode()
    assert "kinds/.py" not in page
    assert "<b>python</b>: &quot;callable&quot;" in page
    assert "<b>shell</b>: either &quot;argv&quot;" in page
    assert "<b>http</b>: &quot;url&quot;" in page


def test_invalid_json_is_reported_with_its_line_and_column(admin_client: Client) -> None:
    response = admin_client.post(TOOLS + "add/", form_data(config='{\n  "argv": ["a",]\n}'))
    errors = response.context["adminform"].form.errors["config"]
    assert errors == ["Enter a valid JSON: Expecting value at line 2, column 16."]


def test_admin_pages_name_a_favicon_that_is_served(admin_client: Client) -> None:
    page = admin_client.get(TOOLS).content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    response = admin_client.get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (301, "/static/favicon.svg")
    icon = admin_client.get("/static/favicon.svg")
    assert icon.status_code == 200
    icon.close()
