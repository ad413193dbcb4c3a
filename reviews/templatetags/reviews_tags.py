"""Template filters for the review pages."""

from __future__ import annotations

import json
from typing import Any

from django import template

from reviews import selectors
from reviews.models import AuditEntry
from runs.plan_versions import value_changes

register = template.Library()


@register.filter
def as_json(value: Any) -> str:
    """Indented JSON (autoescaped by the template like any text); "—" for nothing."""
    if value is None:
        return "—"
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@register.filter
def risk_level(score: int | None) -> str:
    """``high``, ``medium`` or ``low`` for a queue item's risk score."""
    return selectors.risk_level(score)


@register.filter
def field_diff(entry: AuditEntry) -> list[dict[str, str]]:
    """An audit entry's before and after as the fields that changed, values cut short."""
    before = entry.before if entry.before is not None else {}
    after = entry.after if entry.after is not None else {}
    return [
        {
            "path": c["path"] or "value",
            "op": c["op"],
            "from": _short(c["from"]),
            "to": _short(c["to"]),
        }
        for c in value_changes(before, after)
    ]


def _short(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 200 else text[:199] + "…"
