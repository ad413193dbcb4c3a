"""Where an MCP server is and how to reach it: a McpServer row made into SDK transport arguments.

Values in ``env`` and ``headers`` may name the worker's environment as ``${VAR}``:
secrets stay in the deployment's environment, and are read only when connecting.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runs.models import McpServer
from runs.tools.base import ToolConfigError

LIFELINE = str(Path(__file__).with_name("lifeline.py"))
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class ServerSpec:
    """A snapshot of one McpServer row, safe to hold outside the database thread."""

    name: str
    transport: str
    command: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_model(cls, row: McpServer) -> ServerSpec:
        return cls(
            name=row.name,
            transport=row.transport,
            command=tuple(row.command or ()),
            env=dict(row.env or {}),
            cwd=row.cwd,
            url=row.url,
            headers=dict(row.headers or {}),
        )


def load_server(name: str) -> ServerSpec:
    """The named server (from the database: call it in a database thread)."""
    row = McpServer.objects.filter(name=name).first()
    if row is None:
        raise ToolConfigError(f"no MCP server named {name!r} is registered")
    return ServerSpec.from_model(row)


def server_problems(
    *, transport: str, command: Any, env: Any, cwd: str, url: str, headers: Any
) -> list[tuple[str, str]]:
    """Problems with a server's fields, as ``(field, message)`` pairs (the admin's checks)."""
    problems: list[tuple[str, str]] = []
    if transport == McpServer.Transport.STDIO:
        if not (
            isinstance(command, list)
            and command
            and all(isinstance(a, str) and a and "\0" not in a for a in command)
        ):
            problems.append(("command", "a stdio server needs an argv list of non-empty texts"))
        if url:
            problems.append(("url", "a stdio server has no URL"))
    elif transport == McpServer.Transport.HTTP:
        if not url.startswith(("http://", "https://")):
            problems.append(("url", "a streamable HTTP server needs an http(s) URL"))
        if command:
            problems.append(("command", "an HTTP server has no command"))
    else:
        problems.append(("transport", f"unknown transport {transport!r} (stdio or http)"))
    for label, mapping in (("env", env), ("headers", headers)):
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and _NAME.match(k) and isinstance(v, str) for k, v in mapping.items()
        ):
            problems.append((label, f"{label} must map names to texts (a secret as ${{VAR}})"))
    return problems


def resolve(text: str, where: str) -> str:
    """``text`` with each ``${VAR}`` replaced from the environment; a missing one is an error."""

    def value(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1))
        if found is None:
            raise ToolConfigError(
                f"{where} names ${{{match.group(1)}}}, which is not set in the worker's environment"
            )
        return found

    return _REFERENCE.sub(value, text)


def stdio_arguments(server: ServerSpec) -> dict[str, Any]:
    """``StdioServerParameters`` fields: the server's argv behind the lifeline, env resolved."""
    env = {k: resolve(v, f"MCP server {server.name!r} env {k}") for k, v in server.env.items()}
    return {
        "command": sys.executable,
        "args": ["-I", "-S", LIFELINE, *server.command],
        "env": env,
        "cwd": server.cwd or None,
    }


def http_headers(server: ServerSpec) -> dict[str, str]:
    """The server's headers, secrets resolved."""
    return {
        k: resolve(v, f"MCP server {server.name!r} header {k}") for k, v in server.headers.items()
    }
