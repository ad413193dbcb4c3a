"""The ``script:`` of a python tool in ``tools.yaml``: ``python: package.module.function`` or a mapping."""

from __future__ import annotations

from typing import Any

SCRIPT_KEYS = ("python",)
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
    if isinstance(value, str):
        return {"callable": value}
    if isinstance(value, dict):
        return dict(value)
    problems.append(f"{path}.python: must be a dotted path like 'package.module.function'")
    return None


def script_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """The ``script:`` mapping that imports back as ``config``; a bare callable written short."""
    if set(config) == {"callable"}:
        return {"python": config["callable"]}
    return {"python": config}
