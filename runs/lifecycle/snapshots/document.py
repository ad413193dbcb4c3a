"""The snapshot document's identity, its JSON Schema, and validation against it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from runs.lifecycle.errors import RunError

FORMAT = "plannerweb.run-snapshot"
FORMAT_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("schema.json")
# A snapshot names at most this many problems: enough to fix a file, never a wall of text.
_MAX_PROBLEMS = 5


class SnapshotError(RunError):
    """A snapshot that cannot be exported or imported; nothing was written."""


@cache
def snapshot_schema() -> dict[str, Any]:
    """The JSON Schema every snapshot of ``FORMAT_VERSION`` satisfies."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(snapshot_schema())


def snapshot_validate(document: Any) -> None:
    """Raise ``SnapshotError`` naming the first problems when ``document`` breaks the schema."""
    if isinstance(document, dict) and document.get("format") == FORMAT:
        version = document.get("format_version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise SnapshotError(
                f"snapshot format version {version} is newer than this plannerweb reads "
                f"({FORMAT_VERSION})"
            )
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        problems = [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message[:200]}"
            for e in errors[:_MAX_PROBLEMS]
        ]
        raise SnapshotError("not a valid run snapshot: " + "; ".join(problems))


def snapshot_json(document: dict[str, Any]) -> str:
    """The document as the file ``run_export`` writes (UTF-8, one key per line, stable order)."""
    return json.dumps(document, ensure_ascii=False, indent=1) + "\n"
