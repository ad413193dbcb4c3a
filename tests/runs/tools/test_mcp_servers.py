"""MCP servers in tools.yaml: imported before their tools, audited, exported back."""

from __future__ import annotations

import pytest

from reviews.models import AuditEntry
from runs.models import McpServer, Tool
from runs.tools.yaml_io import ToolsYamlError, tools_import, tools_to_yaml

pytestmark = pytest.mark.django_db

FILE = """\
mcp_servers:
  - name: acme
    transport: stdio
    command: [acme-mcp, --readonly]
    env: {ACME_TOKEN: "${ACME_TOKEN}"}
tools:
  - name: acme-search
    parameters: [{name: query, type: string, required: true}]
    script:
      mcp: {server: acme, tool: search}
"""


def test_a_file_registers_its_servers_and_their_tools_and_exports_them_back() -> None:
    report = tools_import(text=FILE)
    assert report.servers == ["acme"] and report.created == ["acme-search"]
    server = McpServer.objects.get(name="acme")
    assert server.command == ["acme-mcp", "--readonly"]
    assert server.env == {"ACME_TOKEN": "${ACME_TOKEN}"}
    assert AuditEntry.objects.filter(object_type="mcp_server", action="mcp_server.created").exists()
    exported = tools_to_yaml(Tool.objects.all())
    assert exported.startswith("mcp_servers:\n- name: acme\n")
    again = tools_import(text=exported)
    assert again.servers == [] and again.unchanged == ["acme-search"]


def test_a_bad_server_imports_nothing() -> None:
    text = FILE.replace("command: [acme-mcp, --readonly]", "url: 'ftp://x'")
    with pytest.raises(ToolsYamlError) as failure:
        tools_import(text=text)
    assert "mcp_servers[0].command: a stdio server needs an argv list of non-empty texts" in (
        failure.value.problems
    )
    assert not McpServer.objects.exists() and not Tool.objects.exists()
