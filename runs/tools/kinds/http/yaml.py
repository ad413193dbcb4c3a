"""The ``script:`` of an http tool in ``tools.yaml``: ``http:`` with method, url, headers, body, output."""

from __future__ import annotations

from typing import Any

SCRIPT_KEYS = ("http",)
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
    if not isinstance(value, dict):
        problems.append(f"{path}.http: must be a mapping (method, url, headers, body, output)")
        return None
    return dict(value)


def script_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """The ``script:`` mapping that imports back as ``config``."""
    return {"http": config}
