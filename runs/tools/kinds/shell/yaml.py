"""The ``script:`` of a shell tool in ``tools.yaml``: ``argv:`` or ``shell:``, with cwd, env, env_params, output."""

from __future__ import annotations

from typing import Any

from runs.tools.kinds.shell.placeholders import PlaceholderError, convert, has_placeholders
from runs.tools.yaml_style import Flow

SCRIPT_KEYS = ("argv", "shell")
SCRIPT_EXTRAS = frozenset({"cwd", "env", "env_params", "output"})


def config_from_script(
    script: dict[str, Any],
    key: str,
    path: str,
    problems: list[str],
    params: set[str] | None = None,
) -> dict[str, Any] | None:
    """The tool config a ``script:`` mapping describes: the mapping itself.

    A ``shell:`` text with gantz.yaml's ``{{param}}`` placeholders is converted to
    quoted environment references (``placeholders.py``), or refused where quoting
    cannot make it safe.
    """
    config = dict(script)
    text = config.get("shell")
    if isinstance(text, str) and has_placeholders(text):
        try:
            config["shell"] = convert(text, params)
        except PlaceholderError as exc:
            problems.append(f"{path}.shell: {exc}")
            return None
    return config


def script_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """The ``script:`` mapping that imports back as ``config``; an argv written inline."""
    script = dict(config)
    if isinstance(script.get("argv"), list):
        script["argv"] = Flow(script["argv"])
    return script
