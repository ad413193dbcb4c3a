"""The ``script:`` of an llm tool in ``tools.yaml``: ``prompt:`` and its optional sibling keys."""

from __future__ import annotations

from typing import Any

SCRIPT_KEYS = ("prompt",)
SCRIPT_EXTRAS: frozenset[str] = frozenset(
    {"system", "output_schema", "provider", "model", "temperature", "max_tokens", "recorded"}
)


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
    if not isinstance(script[key], str):
        problems.append(f"{path}.prompt: must be text (the prompt template)")
        return None
    return dict(script)


def script_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """The ``script:`` mapping that imports back as ``config``."""
    return dict(config)
