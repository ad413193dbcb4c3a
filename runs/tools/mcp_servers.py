"""MCP servers in ``tools.yaml``: an ``mcp_servers:`` list beside ``tools:``, imported and exported.

::

    mcp_servers:
      - {name: acme, transport: stdio, command: [npx, -y, "@acme/mcp"], env: {TOKEN: "${ACME_TOKEN}"}}
      - {name: docs, transport: http, url: "https://docs.example/mcp"}

Servers are upserted by name before the tools that call them, each change audited.
"""

from __future__ import annotations

import re
from typing import Any

from reviews.audit import config_audit, model_snapshot
from runs.models import McpServer
from runs.tools.kinds.mcp.servers import server_problems

SERVER_FIELDS = ("name", "transport", "command", "env", "cwd", "url", "headers")
_NAME = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")
_DEFAULTS: dict[str, Any] = {"command": [], "env": {}, "cwd": "", "url": "", "headers": {}}


def servers_from_document(document: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The servers a tools file lists, and its problems as ``"<path>: <message>"``."""
    entries = document.get("mcp_servers") or []
    if not isinstance(entries, list):
        return [], ["mcp_servers: must be a list"]
    drafts: list[dict[str, Any]] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        path = f"mcp_servers[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{path}: each server must be a mapping")
            continue
        problems += [f"{path}: unknown key {k!r}" for k in entry if k not in SERVER_FIELDS]
        draft = {**_DEFAULTS, **{k: v for k, v in entry.items() if k in SERVER_FIELDS}}
        if not isinstance(draft.get("name"), str) or not _NAME.match(draft["name"]):
            problems.append(f"{path}.name: use letters, digits, '-' and '_' (at most 100)")
        for key in ("cwd", "url", "transport"):
            if not isinstance(draft.get(key, ""), str):
                problems.append(f"{path}.{key}: must be text")
                draft[key] = ""
        problems += [
            f"{path}.{field}: {message}"
            for field, message in server_problems(
                transport=draft.get("transport", ""),
                command=draft["command"],
                env=draft["env"],
                cwd=draft["cwd"],
                url=draft["url"],
                headers=draft["headers"],
            )
        ]
        drafts.append(draft)
    return drafts, problems


def servers_upsert(*, drafts: list[dict[str, Any]], actor: Any, reason: str) -> list[str]:
    """Create or update each server by name (the caller's transaction); the names changed."""
    changed: list[str] = []
    for draft in drafts:
        server = McpServer.objects.select_for_update().filter(name=draft["name"]).first()
        before = model_snapshot(server, SERVER_FIELDS) if server is not None else None
        if server is None:
            server = McpServer(name=draft["name"])
        for key in SERVER_FIELDS:
            setattr(server, key, draft[key])
        after = model_snapshot(server, SERVER_FIELDS)
        if after == before:
            continue
        server.save()
        config_audit(
            actor=actor,
            object_type="mcp_server",
            object_id=str(server.pk),
            before=before,
            after=after,
            reason=reason,
        )
        changed.append(server.name)
    return changed


def servers_for_export(names: set[str]) -> list[dict[str, Any]]:
    """The named servers as file entries (defaults left out)."""
    entries = []
    for server in McpServer.objects.filter(name__in=names).order_by("name"):
        entry = {k: getattr(server, k) for k in SERVER_FIELDS}
        entries.append({k: v for k, v in entry.items() if k in ("name", "transport") or v})
    return entries
