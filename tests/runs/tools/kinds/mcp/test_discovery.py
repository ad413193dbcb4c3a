"""Discovery: registry rows from a real MCP server's list_tools(), annotations made into flags."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from reviews.models import AuditEntry
from runs.models import McpServer, Tool
from runs.tools.services import tool_update

SERVERS = "/admin/runs/mcpserver/"


def discover(server: str) -> str:
    out = StringIO()
    call_command("tools_import", "--mcp", server, stdout=out)
    return out.getvalue()


def test_discovery_creates_rows_with_flags_from_the_annotations(http_server: McpServer) -> None:
    report = discover("remote")
    assert "created: 11" in report
    tools = {t.name: t for t in Tool.objects.all()}
    add, drop, fail = tools["remote-add"], tools["remote-drop"], tools["remote-fail"]
    assert (
        add.kind == "mcp" and add.config["tool"] == "add" and add.description == "Add two numbers."
    )
    assert add.parameters_schema["required"] == ["a", "b"]
    assert (add.read_only, add.idempotent, add.sensitive) == (True, True, False)
    assert add.config["annotations"] == {"readOnlyHint": True, "idempotentHint": True}
    assert (drop.read_only, drop.sensitive) == (False, True)
    # Unannotated: not read-only, so destructive as the MCP specification defaults it.
    assert (fail.sensitive, fail.idempotent) == (True, False)
    entries = AuditEntry.objects.filter(object_type="tool")
    assert entries.count() == 11
    assert {e.reason for e in entries} == {"MCP discovery of server 'remote'"}
    assert "unchanged: 11" in discover("remote")


def test_tools_that_disappear_are_disabled_and_come_back_enabled(
    stdio_server: McpServer,
) -> None:
    discover("local")
    stdio_server.env = {**stdio_server.env, "MCP_TEST_TOOLS": "fewer"}
    stdio_server.save()
    report = discover("local")
    assert "disabled: 10" in report
    gone = Tool.objects.get(name="local-drop")
    assert not gone.enabled and gone.config["disappeared"] is True
    assert Tool.objects.get(name="local-add").enabled
    stdio_server.env = {"MCP_TEST_SECRET": "${PW_TEST_SECRET}"}
    stdio_server.save()
    assert "updated: 10" in discover("local")
    back = Tool.objects.get(name="local-drop")
    assert back.enabled and "disappeared" not in back.config


def test_a_flag_set_by_hand_survives_the_next_discovery_and_is_audited(
    http_server: McpServer, admin_user: User, operator: User
) -> None:
    discover("remote")
    tool_update(name="remote-drop", changes={"sensitive": False}, actor=admin_user)
    assert AuditEntry.objects.filter(actor=admin_user, object_type="tool").count() == 1
    discover("remote")
    drop = Tool.objects.get(name="remote-drop")
    assert drop.sensitive is False
    assert drop.config["overrides"] == ["sensitive"]
    page = Client()
    page.force_login(operator)
    html = page.get("/tools/").content.decode()
    assert "MCP annotations: destructiveHint=true; set by hand: sensitive" in html


def test_an_unknown_server_imports_nothing(transactional_db: None) -> None:
    with pytest.raises(CommandError, match="no MCP server named 'nope'"):
        discover("nope")
    assert not Tool.objects.exists()


def test_the_admin_action_discovers_a_servers_tools(
    http_server: McpServer, client: Client, admin_user: User
) -> None:
    client.force_login(admin_user)
    response = client.post(
        SERVERS, {"action": "discover", "_selected_action": [http_server.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "Server remote: created 11" in response.content.decode()
    assert Tool.objects.get(name="remote-add").read_only
    page = client.get("/admin/runs/tool/").content.decode()
    assert "idempotentHint=True, readOnlyHint=True" in page


def test_the_admin_refuses_a_stdio_server_without_a_command(
    client: Client, admin_user: User
) -> None:
    client.force_login(admin_user)
    response = client.post(
        SERVERS + "add/",
        {"name": "x", "transport": "stdio", "command": "[]", "env": "{}", "headers": "{}"},
    )
    assert response.status_code == 200
    assert "a stdio server needs an argv list" in response.content.decode()
    assert not McpServer.objects.exists()


@pytest.mark.parametrize("who", ["operator", "outsider"])
def test_only_staff_reach_the_servers(
    client: Client, who: str, request: pytest.FixtureRequest
) -> None:
    client.force_login(request.getfixturevalue(who))
    assert client.get(SERVERS).status_code == 302
