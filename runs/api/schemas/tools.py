"""In/Out schemas of the tool registry resource."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema
from pydantic import ConfigDict, JsonValue

from runs.api.inputs import In
from runs.evaluation.checks import CHECK_TYPES
from runs.models import Tool

_CHECKS = "Evaluator checks of each result (see runs/evaluation/checks.py)."
_LOCKS = (
    'Resource locks every step of the tool takes, e.g. ["env:{{ params.environment }}"]; '
    "a step waits while another step holds the same key."
)
_QUEUE = (
    "The executor pool that calls the tool: only workers started with "
    "`manage.py db_worker --queue NAME` run its steps. Empty: the run's own worker."
)
_QUEUE_PATTERN = r"^([a-z0-9][a-z0-9_-]{0,39})?$"
_HONOURS = (
    "The tool does its operation once per idempotency key (each step's calls all carry the "
    "step's key), so a step caught mid-call by a crash is called again instead of escalating."
)
_CHECK: dict[str, JsonValue] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": list(CHECK_TYPES)},
        "on_fail": {"enum": ["fail", "warn"]},
        "path": {"type": "string"},
    },
}


class ToolIn(In):
    """A whole tool; ``config`` depends on ``kind`` (see runs/tools/kinds/<kind>/)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "hello",
                    "kind": "python",
                    "config": {"callable": "runs.tools.builtin.echo"},
                    "parameters_schema": {
                        "type": "object",
                        "properties": {"who": {"type": "string"}},
                    },
                }
            ]
        }
    )

    name: str = Field(max_length=100, pattern=r"^[-a-zA-Z0-9_]+$")
    description: str = Field("", max_length=10_000)
    kind: str = Field(json_schema_extra={"enum": list(Tool.Kind.values)})
    config: dict[str, Any] = Field(default_factory=dict)
    parameters_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description='A JSON Schema with "type": "object".',
    )
    timeout_seconds: float = Field(60.0, gt=0, le=86_400)
    max_retries: int = Field(2, ge=0, le=100)
    sensitive: bool = False
    idempotent: bool = False
    read_only: bool = False
    honours_idempotency_key: bool = Field(False, description=_HONOURS)
    enabled: bool = True
    checks: list[dict[str, Any]] = Field(
        default_factory=list, description=_CHECKS, json_schema_extra={"items": _CHECK}
    )
    locks: list[str] = Field(default_factory=list, description=_LOCKS)
    queue: str = Field("", max_length=40, pattern=_QUEUE_PATTERN, description=_QUEUE)


class ToolPatchIn(In):
    """Some fields of a tool; those left out keep their value."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"enabled": False}]})

    name: str | None = Field(None, max_length=100, pattern=r"^[-a-zA-Z0-9_]+$")
    description: str | None = Field(None, max_length=10_000)
    kind: str | None = Field(None, json_schema_extra={"enum": list(Tool.Kind.values)})
    config: dict[str, Any] | None = None
    parameters_schema: dict[str, Any] | None = None
    timeout_seconds: float | None = Field(None, gt=0, le=86_400)
    max_retries: int | None = Field(None, ge=0, le=100)
    sensitive: bool | None = None
    idempotent: bool | None = None
    read_only: bool | None = None
    honours_idempotency_key: bool | None = Field(None, description=_HONOURS)
    enabled: bool | None = None
    checks: list[dict[str, Any]] | None = Field(
        None, description=_CHECKS, json_schema_extra={"items": _CHECK}
    )
    locks: list[str] | None = Field(None, description=_LOCKS)
    queue: str | None = Field(None, max_length=40, pattern=_QUEUE_PATTERN, description=_QUEUE)


class ToolOut(Schema):
    name: str
    description: str
    kind: str
    parameters_schema: dict[str, Any]
    timeout_seconds: float
    max_retries: int
    sensitive: bool
    idempotent: bool
    read_only: bool
    honours_idempotency_key: bool
    enabled: bool
    checks: list[dict[str, Any]]
    locks: list[str]
    queue: str
    created_at: datetime
    updated_at: datetime
    config: dict[str, Any] | None = Field(
        None, description="Only shown to staff: it may hold URLs and headers."
    )


class ToolsImportIn(In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": "tools:\n  - name: hello\n    script:\n      python: runs.tools.builtin.echo\n"
                }
            ]
        }
    )
    text: str = Field(max_length=2_000_000, description="A tools.yaml file's content.")
    replace: bool = Field(False, description="Also disable every enabled tool the file omits.")


class ConvertedScriptOut(Schema):
    name: str
    file_script: str = Field(
        description="The shell text as the file gave it, {{param}} placeholders and all."
    )
    stored_script: str = Field(description="The script stored: each placeholder a quoted variable.")


class ToolsImportOut(Schema):
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    disabled: list[str]
    converted: list[ConvertedScriptOut] = Field(
        description="Shell scripts whose gantz.yaml placeholders were converted at import."
    )
    mcp_servers: list[str] = Field(description="MCP servers the file created or changed.")

    @staticmethod
    def resolve_converted(report: Any) -> list[dict[str, str]]:
        return [
            {"name": name, "file_script": before, "stored_script": after}
            for name, (before, after) in report.converted.items()
        ]

    @staticmethod
    def resolve_mcp_servers(report: Any) -> list[str]:
        return list(report.servers)


class QueueOut(Schema):
    name: str
    pending: int = Field(description="Steps waiting for a worker of this queue.")
    running: int = Field(description="Steps a worker of this queue is calling now.")
    workers: list[str] = Field(description="Workers with a recent heartbeat serving this queue.")
    tools: list[str] = Field(description="The tools that name this queue.")
    unserved: bool = Field(description="True when no live worker serves the queue.")


class ReuseOneOut(Schema):
    run_id: int
    reused_from: str = Field(description="'run N' or the playbook's name.")
    saved_calls: int
    saved_tokens: int


class ReuseOut(Schema):
    runs: int = Field(description="Runs planned by reusing an approved plan.")
    saved_calls: int = Field(description="Model calls those runs did not make.")
    saved_tokens: int = Field(description="Model tokens saved (estimated from the source runs).")
    reuses: list[ReuseOneOut]
