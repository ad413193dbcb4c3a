"""Tool registry endpoints: everyone with a role reads, staff create, change, delete, import, export."""

from __future__ import annotations

import pytest
import yaml
from django.contrib.auth.models import User

from runs.api.schemas.tools import ToolIn, ToolOut, ToolPatchIn
from runs.models import TOOL_FIELDS, Tool
from tests.runs.api.conftest import api_as

pytestmark = pytest.mark.django_db

HELLO = {
    "name": "hello",
    "description": "Say hello",
    "kind": "http",
    "config": {"method": "GET", "url": "http://127.0.0.1:9/hello", "headers": {"X-Key": "s3cret"}},
    "parameters_schema": {"type": "object", "properties": {"who": {"type": "string"}}},
    "timeout_seconds": 5,
    "idempotent": True,
}


def test_staff_create_a_tool_and_everyone_with_a_role_reads_it_without_its_config(
    admin_user: User, reviewer: User
) -> None:
    created = api_as(admin_user).post("/tools", HELLO)
    assert created.status_code == 201, created.json()
    assert created.json()["config"] == HELLO["config"]
    tool = Tool.objects.get(name="hello")
    assert (tool.kind, tool.timeout_seconds, tool.idempotent) == ("http", 5.0, True)
    as_reviewer = api_as(reviewer)
    listed = as_reviewer.get("/tools").json()
    assert [t["name"] for t in listed] == ["hello"]
    assert listed[0]["config"] is None
    detail = as_reviewer.get("/tools/hello")
    assert detail.json()["parameters_schema"] == HELLO["parameters_schema"]
    assert "s3cret" not in detail.content.decode()
    assert api_as(admin_user).get("/tools/hello").json()["config"]["headers"] == {"X-Key": "s3cret"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "teleport"}, "kind"),
        ({"config": {"url": "ftp://x"}}, "config"),
        ({"parameters_schema": {"type": "array"}}, "parameters_schema"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"name": "has space"}, "name"),
        ({"surprise": True}, "surprise"),
        ({"locks": ["env:{{ steps.a.result }}"]}, "locks"),
        ({"locks": "env:prod"}, "locks"),
    ],
)
def test_a_bad_tool_is_422_naming_the_field_and_nothing_is_saved(
    change: dict, field: str, admin_user: User
) -> None:
    response = api_as(admin_user).post("/tools", {**HELLO, **change})
    assert response.status_code == 422, response.json()
    assert field in {f["field"] for f in response.json()["fields"]}
    assert not Tool.objects.exists()


def test_a_tool_declares_resource_locks(admin_user: User) -> None:
    locks = ["env:{{ params.who }}"]
    created = api_as(admin_user).post("/tools", {**HELLO, "locks": locks})
    assert created.status_code == 201, created.json()
    assert Tool.objects.get(name="hello").locks == locks
    assert api_as(admin_user).get("/tools/hello").json()["locks"] == locks


def test_a_duplicate_name_is_409(admin_user: User) -> None:
    client = api_as(admin_user)
    assert client.post("/tools", HELLO).status_code == 201
    again = client.post("/tools", HELLO)
    assert again.status_code == 409
    assert again.json()["fields"][0]["field"] == "name"
    assert Tool.objects.count() == 1


def test_patch_changes_only_the_fields_given_and_put_replaces_the_tool(admin_user: User) -> None:
    client = api_as(admin_user)
    client.post("/tools", HELLO)
    patched = client.patch("/tools/hello", {"enabled": False, "description": "Off for now"})
    assert patched.status_code == 200
    tool = Tool.objects.get(name="hello")
    assert (tool.enabled, tool.description, tool.timeout_seconds) == (False, "Off for now", 5.0)
    replaced = client.put(
        "/tools/hello",
        {"name": "hi", "kind": "python", "config": {"callable": "runs.tools.builtin.echo"}},
    )
    assert replaced.status_code == 200, replaced.json()
    tool = Tool.objects.get()
    assert (tool.name, tool.kind, tool.enabled, tool.timeout_seconds) == (
        "hi",
        "python",
        True,
        60.0,
    )


def test_a_bad_change_leaves_the_tool_as_it_was(admin_user: User) -> None:
    client = api_as(admin_user)
    client.post("/tools", HELLO)
    response = client.patch("/tools/hello", {"description": "new", "kind": "python"})
    assert response.status_code == 422  # an http config is not a python config
    tool = Tool.objects.get(name="hello")
    assert (tool.description, tool.kind) == ("Say hello", "http")
    assert client.patch("/tools/hello", {"enabled": None}).status_code == 422


def test_delete_removes_a_tool_and_unknown_tools_are_404(admin_user: User) -> None:
    client = api_as(admin_user)
    client.post("/tools", HELLO)
    assert client.delete("/tools/hello").status_code == 204
    assert not Tool.objects.exists()
    for response in (
        client.delete("/tools/hello"),
        client.get("/tools/hello"),
        client.patch("/tools/hello", {"enabled": False}),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_export_then_import_round_trips_the_registry(admin_user: User) -> None:
    client = api_as(admin_user)
    client.post("/tools", HELLO)
    exported = client.get("/tools.yaml")
    assert exported.status_code == 200
    assert exported["Content-Type"] == "application/yaml"
    text = exported.content.decode()
    assert yaml.safe_load(text)["tools"][0]["name"] == "hello"
    Tool.objects.all().delete()
    imported = client.post("/tools.yaml", {"text": text})
    assert imported.json() == {
        "created": ["hello"],
        "updated": [],
        "unchanged": [],
        "disabled": [],
        "converted": [],
        "mcp_servers": [],
    }
    assert client.get("/tools.yaml").content.decode() == text
    again = client.post("/tools.yaml", {"text": text})
    assert again.json()["unchanged"] == ["hello"]


def test_import_with_replace_disables_tools_the_file_omits(admin_user: User) -> None:
    client = api_as(admin_user)
    client.post("/tools", HELLO)
    text = "tools:\n  - name: echo\n    script: {python: runs.tools.builtin.echo}\n"
    report = client.post("/tools.yaml", {"text": text, "replace": True}).json()
    assert (report["created"], report["disabled"]) == (["echo"], ["hello"])
    assert Tool.objects.get(name="hello").enabled is False


def test_a_bad_tools_file_is_422_listing_every_problem_and_imports_nothing(
    admin_user: User,
) -> None:
    text = (
        "tools:\n"
        "  - name: good\n    script: {python: runs.tools.builtin.echo}\n"
        "  - name: bad one\n    script: {python: nope}\n"
        "  - {name: nokind}\n"
    )
    response = api_as(admin_user).post("/tools.yaml", {"text": text})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_tools_file"
    assert len(body["fields"]) >= 2 and all(f["field"] == "text" for f in body["fields"])
    assert not Tool.objects.exists()
    assert api_as(admin_user).post("/tools.yaml", {"text": "{{{"}).status_code == 422


def test_every_change_through_the_api_is_audited_with_its_author(admin_user: User) -> None:
    from reviews.audit import audit_verify
    from reviews.models import AuditEntry

    client = api_as(admin_user)
    assert client.post("/tools", HELLO).status_code == 201
    tool_id = str(Tool.objects.get(name="hello").pk)
    assert client.patch("/tools/hello", {"timeout_seconds": 9}).status_code == 200
    text = "tools:\n  - name: echo\n    script: {python: runs.tools.builtin.echo}\n"
    assert client.post("/tools.yaml", {"text": text, "replace": True}).status_code == 200
    assert client.delete("/tools/hello").status_code == 204
    entries = list(AuditEntry.objects.filter(object_type="tool", object_id=tool_id).order_by("id"))
    assert [e.action for e in entries] == [
        "tool.created",
        "tool.changed",
        "tool.changed",  # disabled by the import's replace
        "tool.deleted",
    ]
    assert {e.actor_name for e in entries} == {admin_user.username}
    assert (entries[1].before["timeout_seconds"], entries[1].after["timeout_seconds"]) == (5.0, 9)
    assert entries[2].after["enabled"] is False and entries[3].after is None
    assert AuditEntry.objects.filter(object_type="tool", action="tool.created").count() == 2
    assert audit_verify() == []


def test_the_api_takes_and_shows_every_field_of_a_tool() -> None:
    assert set(ToolIn.model_fields) == set(ToolPatchIn.model_fields) == set(TOOL_FIELDS)
    assert set(TOOL_FIELDS) <= set(ToolOut.model_fields)
