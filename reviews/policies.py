"""Policies: when a plan or a step needs a human, how many approvals, what each kind's rules are.

Everything here reads; nothing writes except ``kind_settings`` creating a kind's
defaults the first time it is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from reviews.models import (
    ApprovalMode,
    ApprovalPolicy,
    ReviewKind,
    ReviewKindSettings,
    TimeoutAction,
)
from reviews.risk import Rescored, plan_risk, risk_rescore
from runs.models import Plan, Step, Task

DEFAULT_KIND_SETTINGS: dict[str, dict[str, Any]] = {
    ReviewKind.PLAN_APPROVAL: {
        "sla_minutes": 60,
        "timeout_action": TimeoutAction.NONE,
        "checklist": [
            "Every step's tool and parameters fit the task",
            "Steps that change data come after a backup and have a rollback",
            "No step touches a system the task did not name",
        ],
    },
    ReviewKind.STEP_GATE: {
        "sla_minutes": 30,
        "timeout_action": TimeoutAction.NONE,
        "checklist": [
            "The step's parameters are right for this run",
            "The results it depends on look correct",
        ],
    },
    # A question for the submitter: a day to answer; the admin may make the run stop then.
    ReviewKind.CLARIFICATION: {
        "sla_minutes": 24 * 60,
        "timeout_action": TimeoutAction.NONE,
        "checklist": [],
    },
    # A planner's plan shown to its submitter before it runs (plan, then confirm).
    ReviewKind.CONFIRMATION: {
        "sla_minutes": 24 * 60,
        "timeout_action": TimeoutAction.NONE,
        "checklist": [],
    },
    # A tool's question during a call: the step's timeout bounds the wait as well.
    ReviewKind.ELICITATION: {
        "sla_minutes": 60,
        "timeout_action": TimeoutAction.NONE,
        "checklist": [],
    },
    ReviewKind.ESCALATION: {
        "sla_minutes": 60,
        "timeout_action": TimeoutAction.NONE,
        "checklist": [
            "I read the failure report and the partial results",
            "The chosen action leaves no step half-done",
        ],
    },
}


def kind_settings(kind: str) -> ReviewKindSettings:
    """The settings row for a kind, created with the defaults above the first time."""
    row, _ = ReviewKindSettings.objects.get_or_create(
        kind=kind, defaults=DEFAULT_KIND_SETTINGS[kind]
    )
    return row


@dataclass(frozen=True)
class EffectivePolicy:
    mode: str
    threshold: float
    source: str  # "task", "tool <name>", "global" or "settings"


def global_policy() -> EffectivePolicy:
    row = ApprovalPolicy.objects.filter(tool__isnull=True, task__isnull=True).first()
    if row is not None:
        return EffectivePolicy(row.mode, row.confidence_threshold, "global")
    return EffectivePolicy(
        settings.PLANNERWEB_APPROVAL_MODE, settings.PLANNERWEB_GATE_CONFIDENCE, "settings"
    )


def plan_risk_fields(plan_id: int | None) -> dict[str, Any]:
    """The risk columns an item stores for the plan it reviews, scored against today's threshold."""
    return plan_risk(plan_id).fields(global_policy().threshold)


def items_rescore() -> Rescored:
    """Rescore the stored risk of every item against today's threshold: checked, changed.

    Called whenever the global policy (and so the threshold) changes; items keep their
    facts, only the low-confidence point moves.
    """
    return risk_rescore(low_confidence=global_policy().threshold)


def _step_reason(policy: EffectivePolicy, step: Step, sensitive: bool) -> str | None:
    if policy.mode == ApprovalMode.ALWAYS:
        return f"{policy.source} policy: every plan needs approval"
    if policy.mode == ApprovalMode.SENSITIVE and sensitive:
        return (
            f"{policy.source} policy: step {step.key!r} uses the sensitive tool {step.tool_name!r}"
        )
    if (
        policy.mode == ApprovalMode.LOW_CONFIDENCE
        and step.confidence is not None
        and step.confidence < policy.threshold
    ):
        return (
            f"{policy.source} policy: step {step.key!r} has confidence {step.confidence:g} "
            f"(below {policy.threshold:g})"
        )
    return None


def plan_needs_approval(plan: Plan, task: Task) -> str | None:
    """Why ``plan`` must wait for a reviewer, or None when it may run straight away.

    1. A task override decides for the whole plan.
    2. Otherwise each main step is judged by its tool's override, else the global policy;
       the first step that needs approval gives the reason.
    """
    steps = list(  # only what the policy reads: a 1000-step plan's params cost ~50 ms to load
        Step.objects.filter(plan=plan, phase=Step.Phase.MAIN)
        .select_related("tool")
        .only("key", "tool_id", "tool_name", "confidence", "tool__sensitive")
        .order_by("position")
    )
    task_row = ApprovalPolicy.objects.filter(task=task).first()
    tool_rows = {
        p.tool_id: p
        for p in ApprovalPolicy.objects.filter(tool_id__in={s.tool_id for s in steps if s.tool_id})
    }
    fallback = (
        EffectivePolicy(task_row.mode, task_row.confidence_threshold, "task")
        if task_row is not None
        else global_policy()
    )
    for step in steps:
        row = tool_rows.get(step.tool_id) if task_row is None else None
        policy = (
            EffectivePolicy(row.mode, row.confidence_threshold, f"tool {step.tool_name}")
            if row is not None
            else fallback
        )
        reason = _step_reason(policy, step, bool(step.tool and step.tool.sensitive))
        if reason:
            return reason
    return None


def required_approvals(plan: Plan) -> int:
    """The quorum for a plan: the largest ``required_approvals`` among its tools' policies."""
    tool_ids = Step.objects.filter(plan=plan).values_list("tool_id", flat=True)
    counts = ApprovalPolicy.objects.filter(tool_id__in=tool_ids).values_list(
        "required_approvals", flat=True
    )
    return max([1, *counts])


def gate_threshold(tool_name: str) -> float:
    """The confidence below which a sensitive tool's step pauses: the tool's override, else settings."""
    row = ApprovalPolicy.objects.filter(tool__name=tool_name).only("confidence_threshold").first()
    return row.confidence_threshold if row is not None else settings.PLANNERWEB_GATE_CONFIDENCE


def step_needs_gate(step: Any, tool: Any, *, threshold: float | None = None) -> bool:
    """True when ``step`` (anything with ``.confidence``) on ``tool`` must pause for a reviewer.

    Only sensitive tools gate, and only steps whose planner gave a confidence
    below the tool's threshold (default ``PLANNERWEB_GATE_CONFIDENCE``, 0.6);
    pass ``threshold`` to skip the database lookup.
    """
    if tool is None or not getattr(tool, "sensitive", False):
        return False
    confidence = getattr(step, "confidence", None)
    if confidence is None:
        return False
    limit = gate_threshold(tool.name) if threshold is None else threshold
    return float(confidence) < limit


def four_eyes_applies(task: Task, user: Any) -> bool:
    """True when four-eyes is on and ``user`` submitted the task, so may not approve its plan."""
    return bool(
        settings.PLANNERWEB_FOUR_EYES
        and task.submitted_by_id is not None
        and task.submitted_by_id == getattr(user, "pk", None)
    )


def missing_checklist(checklist: list[str], ticked: Iterable[Any]) -> list[str]:
    """The checklist sentences not ticked; ticks are indexes (as ints or digit strings)."""
    done = set()
    for t in ticked:
        try:
            done.add(int(t))
        except (TypeError, ValueError):
            continue
    return [text for i, text in enumerate(checklist) if i not in done]
