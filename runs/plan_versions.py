"""Plan versions: what a new version of a run's plan takes over from the one before it, and its hash.

A replan, a retry and a reviewer's edit all store a new version whose copies of
steps that already succeeded must not run again. The copy takes over the whole
outcome of the step (a creation, not a transition: no status event is written).

A reviewer's decision names the version it approves and the hash of its document
(``plan_hash``), so an approval never lands on text the reviewer did not see.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from runs.models import Plan, Step

# A step's outcome: everything the run did to it, as opposed to what the plan says it is.
OUTCOME_FIELDS = (
    "status",
    "attempts",
    "result",
    "error",
    "started_at",
    "finished_at",
    "verdict",
    "verdict_reason",
)
# What a copy takes over besides: the key its tool was called with, which made that outcome.
CARRIED_FIELDS = (*OUTCOME_FIELDS, "idempotency_key")


def steps_carry_over(*, plan: Plan, finished: Iterable[Step]) -> list[str]:
    """Give ``plan``'s main steps the outcome of the ``finished`` steps with their keys; those keys."""
    done = {s.key: s for s in finished}
    copies = list(plan.steps.filter(phase=Step.Phase.MAIN, key__in=list(done)).order_by("position"))
    for step in copies:
        source = done[step.key]
        for name in CARRIED_FIELDS:
            setattr(step, name, getattr(source, name))
    Step.objects.bulk_update(copies, CARRIED_FIELDS)
    return [step.key for step in copies]


def content_hash(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON: key order and whitespace do not change it."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def plan_hash(plan: Plan | None) -> str:
    """The hash of a plan version's document, what a reviewer's decision binds to ("" for none)."""
    return content_hash(plan.document) if plan is not None else ""


# --------------------------------------------------------------------------- diffs
# A step field left out and the same field given empty mean the same step.
_EMPTY: tuple[Any, ...] = ("", [], {}, None)


def _same(before: Any, after: Any) -> bool:
    # As JSON text, the way ``content_hash`` sees them: key order does not count, types do.
    return json.dumps(before, sort_keys=True, default=str) == json.dumps(
        after, sort_keys=True, default=str
    )


def value_changes(before: Any, after: Any, *, prefix: str = "") -> list[dict[str, Any]]:
    """What differs between two JSON values, field by field: ``{path, op, from, to}`` each.

    Objects are compared key by key (paths joined with dots, ``params.env``); anything
    else (lists, numbers, text) is compared as a whole. ``op`` is ``added``,
    ``removed`` or ``changed``. The one diff of the product: plan versions, a
    reviewer's edit before it is saved, and audit entries' before and after.
    """
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[dict[str, Any]] = []
        for key in [*before, *(k for k in after if k not in before)]:
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in after:
                found.append({"path": path, "op": "removed", "from": before[key], "to": None})
            elif key not in before:
                found.append({"path": path, "op": "added", "from": None, "to": after[key]})
            else:
                found.extend(value_changes(before[key], after[key], prefix=path))
        return found
    if _same(before, after):
        return []
    if before is None or after is None:
        op = "added" if before is None else "removed"
        return [{"path": prefix, "op": op, "from": before, "to": after}]
    return [{"path": prefix, "op": "changed", "from": before, "to": after}]


def _steps_by_id(document: Any) -> dict[str, dict[str, Any]]:
    """A plan document's steps by id (a step without a usable id by its position: ``#3``)."""
    steps = document.get("steps") if isinstance(document, dict) else None
    found: dict[str, dict[str, Any]] = {}
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        body = step if isinstance(step, dict) else {"value": step}
        key = body.get("id")
        name = key if isinstance(key, str) and key and key not in found else f"#{index + 1}"
        found[name] = {k: v for k, v in body.items() if k != "id" and not _is_empty(v)}
    return found


def _aligned(
    before: dict[str, Any], after: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two steps with an object field one leaves out given as ``{}`` in it: then its
    changes are listed key by key (``params.env``), not as the whole object added."""
    before, after = dict(before), dict(after)
    for name in {*before, *after}:
        if name not in before and isinstance(after[name], dict):
            before[name] = {}
        elif name not in after and isinstance(before[name], dict):
            after[name] = {}
    return before, after


def _is_empty(value: Any) -> bool:
    return any(type(value) is type(e) and value == e for e in _EMPTY)


def plan_document_diff(before: Any, after: Any) -> dict[str, Any]:
    """How plan document ``after`` differs from ``before``, by step id.

    ``added``, ``removed`` and ``kept`` list step ids in plan order; each ``changed``
    step has the top-level ``fields`` that differ, their ``values`` (from, to) and the
    field-level ``changes`` (``value_changes``); ``plan_changes`` covers what is not a
    step (the goal, plan-level rollback steps).
    """
    old, new = _steps_by_id(before), _steps_by_id(after)
    changed, kept = [], []
    for key, step in new.items():
        if key not in old:
            continue
        was, now = _aligned(old[key], step)
        changes = value_changes(was, now)
        if not changes:
            kept.append(key)
            continue
        fields = list(dict.fromkeys(c["path"].split(".", 1)[0] for c in changes))
        changed.append(
            {
                "id": key,
                "fields": fields,
                "values": {f: {"from": was.get(f), "to": now.get(f)} for f in fields},
                "changes": changes,
            }
        )
    rest_before = before if isinstance(before, dict) else {}
    rest_after = after if isinstance(after, dict) else {}
    return {
        "added": [k for k in new if k not in old],
        "removed": [k for k in old if k not in new],
        "changed": changed,
        "kept": kept,
        "plan_changes": value_changes(
            {k: v for k, v in rest_before.items() if k != "steps"},
            {k: v for k, v in rest_after.items() if k != "steps"},
        ),
    }
