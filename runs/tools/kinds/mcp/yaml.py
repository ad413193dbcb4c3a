"""The ``script:`` of an mcp tool in ``tools.yaml``: ``mcp: {server: db, tool: query}``."""

from __future__ import annotations

from typing import Any

SCRIPT_KEYS = ("mcp",)
SCRIPT_EXTRAS: frozenset[str] = frozenset()


def config_from_script(
    script: dict[str, Any],
    key: str,
    path: str,
    problems: list[str],
    params: set[str] | None = None,
) -> dict[str, Any] | None:
    """The tool config a ``script:`` mapping describes, or None after naming its problems."""
    value = script[key]
    if isinstance(value, dict):
        return dict(value)
    problems.append(f"{path}.mcp: must be a mapping like {{server: db, tool: query}}")
    return None


def script_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """The ``script:`` mapping that imports back as ``config``."""
    return {"mcp": dict(config)}
