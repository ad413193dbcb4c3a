"""Writes of the tool registry: create, update, delete, each checked like the admin form and audited."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from reviews.audit import config_audit
from reviews.audit import tool_snapshot as snapshot
from runs.evaluation.checks import validate_checks
from runs.models import TOOL_FIELDS, Tool
from runs.pools import queue_problems
from runs.statemachine import (
    lock_rows,
)
from runs.tools.locks import locks_problems
from runs.tools.registry import validate_parameters_schema, validate_tool_config


class ToolRejected(ValueError):
    """A tool definition with problems; ``problems`` holds ``(field, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))


def _check_tool(tool: Tool) -> None:
    """Every problem with a tool's fields, the checks the admin form makes."""

    problems: list[tuple[str, str]] = []
    if tool.kind not in Tool.Kind.values:
        problems.append(("kind", f"unknown kind {tool.kind!r} (known: {', '.join(Tool.Kind)})"))
    schema_problems = validate_parameters_schema(tool.parameters_schema)
    problems += [("parameters_schema", p) for p in schema_problems]
    if tool.kind in Tool.Kind.values:
        schema = None if schema_problems else tool.parameters_schema
        problems += [
            ("config", p)
            for p in validate_tool_config(tool.kind, tool.config, parameters_schema=schema)
        ]

    problems += [("checks", p) for p in validate_checks(tool.checks)]
    problems += [("locks", p) for p in locks_problems(tool.locks)]
    problems += [("queue", p) for p in queue_problems(tool.queue)]
    if not tool.timeout_seconds > 0:
        problems.append(("timeout_seconds", "the timeout must be above 0 seconds"))
    clash = Tool.objects.filter(name=tool.name).exclude(pk=tool.pk).exists()
    if clash:
        problems.append(("name", f"a tool named {tool.name!r} already exists"))
    if problems:
        raise ToolRejected(problems)


def tool_audit(
    *,
    actor: User | None,
    tool: Tool,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str = "",
) -> None:
    """Audit a change to the registry the way the admin does (API and YAML import too)."""

    config_audit(
        actor=actor,
        object_type="tool",
        object_id=str(tool.pk),
        before=before,
        after=after,
        reason=reason,
    )


def tool_snapshot(tool: Tool) -> dict[str, Any]:

    return snapshot(tool)


@transaction.atomic
def tool_create(*, actor: User | None = None, **fields: Any) -> Tool:
    """Add a tool to the registry after the same checks the admin makes; nothing saved on a problem."""
    tool = Tool(**{k: v for k, v in fields.items() if k in TOOL_FIELDS})
    _check_tool(tool)
    tool.save()
    tool_audit(actor=actor, tool=tool, before=None, after=tool_snapshot(tool))
    return tool


@transaction.atomic
def tool_update(*, name: str, changes: dict[str, Any], actor: User | None = None) -> Tool:
    """Apply ``changes`` (a rename included) to the tool ``name``; nothing saved on a problem."""
    tool = lock_rows(Tool.objects.filter(name=name)).get()
    before = tool_snapshot(tool)
    changed = [k for k, v in changes.items() if k in TOOL_FIELDS and getattr(tool, k) != v]
    for key in changed:
        setattr(tool, key, changes[key])
    _check_tool(tool)
    if changed:
        tool.save(update_fields=[*changed, "updated_at"])
        tool_audit(actor=actor, tool=tool, before=before, after=tool_snapshot(tool))
    return tool


@transaction.atomic
def tool_delete(*, name: str, actor: User | None = None) -> None:
    """Remove a tool; steps that used it keep its name (``Step.tool_name``)."""
    tool = lock_rows(Tool.objects.filter(name=name)).first()
    if tool is None:
        raise Tool.DoesNotExist(f"No tool {name!r}.")
    before, tool_id = tool_snapshot(tool), tool.pk
    tool.delete()  # clears tool.pk: the audit entry names the id it had
    tool.pk = tool_id
    tool_audit(actor=actor, tool=tool, before=before, after=None)
