"""Registry rows from an MCP server's ``list_tools()``: created, updated, or disabled, each audited.

A tool is named ``<server>-<tool>`` (characters a tool name cannot hold become
``_``). Flags follow the tool's annotations (``kinds/mcp/discovery.py``), except
those set by hand: a flag whose value differs from what the annotations stored
at the last discovery meant was overridden by someone (the admin, the API), so
it is kept and listed in the config's ``overrides`` from then on. Tools the
server no longer lists are disabled (never deleted) and marked ``disappeared``;
one that comes back is enabled again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from runs.models import Tool
from runs.tools.kinds.mcp import FLAGS
from runs.tools.kinds.mcp.discovery import RemoteTool, flags_from_annotations, list_remote_tools
from runs.tools.kinds.mcp.servers import load_server
from runs.tools.registry import validate_parameters_schema
from runs.tools.services import tool_audit, tool_snapshot

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class DiscoveryReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<name>: why"


def registry_name(server: str, tool: str) -> str:
    return _UNSAFE.sub("_", f"{server}-{tool}")[:100]


def tools_discover(*, server: str, actor: Any = None) -> DiscoveryReport:
    """List the server's tools (outside any transaction), then write the registry in one."""
    remote = list_remote_tools(load_server(server))
    return _apply(server=server, remote=remote, actor=actor)


@transaction.atomic
def _apply(*, server: str, remote: list[RemoteTool], actor: Any) -> DiscoveryReport:
    report = DiscoveryReport()
    why = f"MCP discovery of server {server!r}"
    ours = {
        t.name: t
        for t in Tool.objects.select_for_update().filter(kind=Tool.Kind.MCP)
        if (t.config or {}).get("server") == server
    }
    seen: set[str] = set()
    for item in remote:
        name = registry_name(server, item.name)
        problems = validate_parameters_schema(item.input_schema)
        other = Tool.objects.filter(name=name).exclude(pk__in=[t.pk for t in ours.values()])
        if problems or name in seen or other.exists():
            why_not = problems[0] if problems else "the name is taken by another tool"
            report.skipped.append(f"{item.name}: {why_not}")
            continue
        seen.add(name)
        fields = _fields(server, item, ours.get(name))
        tool = ours.get(name)
        if tool is None:
            tool = Tool.objects.create(name=name, kind=Tool.Kind.MCP, **fields)
            tool_audit(actor=actor, tool=tool, before=None, after=tool_snapshot(tool), reason=why)
            report.created.append(name)
            continue
        changed = [k for k, v in fields.items() if getattr(tool, k) != v]
        if not changed:
            report.unchanged.append(name)
            continue
        before = tool_snapshot(tool)
        for key in changed:
            setattr(tool, key, fields[key])
        tool.save(update_fields=[*changed, "updated_at"])
        tool_audit(actor=actor, tool=tool, before=before, after=tool_snapshot(tool), reason=why)
        report.updated.append(name)
    for name, tool in ours.items():
        if name in seen or tool.config.get("disappeared"):
            continue
        before = tool_snapshot(tool)
        tool.enabled = False
        tool.config = {**tool.config, "disappeared": True}
        tool.save(update_fields=["enabled", "config", "updated_at"])
        tool_audit(actor=actor, tool=tool, before=before, after=tool_snapshot(tool), reason=why)
        report.disabled.append(name)
    return report


def _fields(server: str, item: RemoteTool, tool: Tool | None) -> dict[str, Any]:
    """The row's fields from the listing, keeping flags set by hand."""
    mapped = flags_from_annotations(item.annotations)
    overrides: set[str] = set()
    enabled = True
    if tool is not None:
        config = tool.config or {}
        overrides = set(config.get("overrides") or ())
        previous = flags_from_annotations(config.get("annotations") or {})
        overrides |= {f for f in FLAGS if getattr(tool, f) != previous[f]}
        # A tool disabled by hand stays so; one disabled because it disappeared comes back.
        enabled = tool.enabled or bool(config.get("disappeared"))
    flags = {f: getattr(tool, f) if f in overrides else mapped[f] for f in FLAGS}
    config = {"server": server, "tool": item.name, "annotations": item.annotations}
    if overrides:
        config["overrides"] = sorted(overrides)
    return {
        "description": item.description,
        "parameters_schema": item.input_schema,
        "config": config,
        "enabled": enabled,
        **flags,
    }
