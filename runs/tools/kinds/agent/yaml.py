"""The ``script:`` of an agent tool in ``tools.yaml``: ``agent:`` with its limits (or ``{}``)."""

from __future__ import annotations

from typing import Any

SCRIPT_KEYS = ("agent",)
SCRIPT_EXTRAS: frozenset[str] = frozenset()


def config_from_script(
    script: dict[str, Any],
    key: str,
    path: str,
    problems: list[str],
    params: set[str] | None = None,
) -> dict[str, Any] | None:
    """The tool config a ``script:`` mapping describes, or None after naming its problems.

    ``params`` (the tool's parameter names) is what other kinds check placeholders against;
    a prompt names them as ``{param}`` and is checked when rendered.
    """
    value = script[key]
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path}.agent: must be a mapping (max_iterations, max_tokens, ...)")
        return None
    return dict(value)


def script_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """The ``script:`` mapping that imports back as ``config``."""
    return {"agent": dict(config)}
