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
