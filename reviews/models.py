"""The review queue: items waiting for a human, the policies that open them, and the audit trail.

Item statuses are written only by ``reviews.statemachine``; audit entries only by
``reviews.audit`` (append-only, hash-chained).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce

from runs.models import Plan, Run, Step, Task, Tool


class ReviewKind(models.TextChoices):
    PLAN_APPROVAL = "plan_approval", "Plan approval"
    STEP_GATE = "step_gate", "Step gate (low confidence)"
    ESCALATION = "escalation", "Escalation"


class ReviewStatus(models.TextChoices):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    EDITED = "edited"
    EXPIRED = "expired"


class ApprovalMode(models.TextChoices):
    ALWAYS = "always", "Always require approval"
    SENSITIVE = "sensitive", "When the plan uses a sensitive tool"
    LOW_CONFIDENCE = "low_confidence", "When a step's confidence is below the threshold"
    NEVER = "never", "Never"


class ApprovalPolicy(models.Model):
    """When a plan needs a reviewer: one global row, plus optional overrides per tool or per task.

    Precedence: a task override decides for the whole plan; otherwise each step
    is judged by its tool's override, else by the global row (else by settings).
    """

    mode = models.CharField(max_length=16, choices=ApprovalMode.choices)
    confidence_threshold = models.FloatField(
        default=0.6, help_text="Steps below this confidence count as low-confidence (0 to 1)."
    )
    # Quorum: plans using this tool need this many distinct approvals (tool rows only).
    required_approvals = models.PositiveSmallIntegerField(default=1)
    tool = models.OneToOneField(
        Tool, null=True, blank=True, on_delete=models.CASCADE, related_name="approval_policy"
    )
    task = models.OneToOneField(
        Task, null=True, blank=True, on_delete=models.CASCADE, related_name="approval_policy"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "approval policies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(tool__isnull=True) | models.Q(task__isnull=True),
                name="policy_tool_or_task",
            ),
            # At most one global row: (0, 0) can exist once.
            models.UniqueConstraint(
                Coalesce("tool", Value(0)), Coalesce("task", Value(0)), name="policy_one_per_scope"
            ),
        ]

    def clean(self) -> None:
        if not 0 <= self.confidence_threshold <= 1:
            raise ValidationError({"confidence_threshold": "Must be between 0 and 1."})
        if self.required_approvals < 1:
            raise ValidationError({"required_approvals": "At least one approval."})
        if self.tool_id and self.task_id:
            raise ValidationError("A policy overrides either a tool or a task, not both.")
        if not self.tool_id and not self.task_id:
            others = ApprovalPolicy.objects.filter(tool__isnull=True, task__isnull=True)
            if others.exclude(pk=self.pk).exists():
                raise ValidationError("There is already a global policy; edit that one.")

    @property
    def scope(self) -> str:
        if self.tool_id:
            return f"tool {self.tool}"
        if self.task_id:
            return f"task {self.task}"
        return "global"

    def __str__(self) -> str:
        return f"{self.scope}: {self.mode}"


class TimeoutAction(models.TextChoices):
    NONE = "none", "Nothing (stays overdue)"
    AUTO_REJECT = "auto_reject", "Reject automatically"
    AUTO_ABORT = "auto_abort", "Abort the run"


class ReviewKindSettings(models.Model):
    """Per item kind: the SLA, what happens when it passes, and the reviewer's checklist."""

    kind = models.CharField(max_length=16, choices=ReviewKind.choices, unique=True)
    sla_minutes = models.PositiveIntegerField(default=60)
    timeout_action = models.CharField(
        max_length=12, choices=TimeoutAction.choices, default=TimeoutAction.NONE
    )
    # Sentences the reviewer must tick before approving, e.g. "Rollback covers every write".
    checklist = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "review kind settings"

    def clean(self) -> None:
        if not isinstance(self.checklist, list) or not all(
            isinstance(s, str) and s.strip() for s in self.checklist
        ):
            raise ValidationError({"checklist": "A list of non-empty sentences."})

    def __str__(self) -> str:
        return self.get_kind_display()


class ReviewItem(models.Model):
    """Something a reviewer must decide: a plan to approve, a gated step, an escalation."""

    kind = models.CharField(max_length=16, choices=ReviewKind.choices, db_index=True)
    status = models.CharField(
        max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.OPEN, db_index=True
    )
    # Why it was opened: the policy that fired, or the escalation's cause.
    cause = models.CharField(max_length=40, blank=True)
    reason_opened = models.TextField(blank=True)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="review_items")
    plan = models.ForeignKey(
        Plan, null=True, blank=True, on_delete=models.CASCADE, related_name="review_items"
    )
    step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="review_items"
    )
    # Failure report, partial results and the like; shown to the reviewer as-is.
    context = models.JSONField(default=dict, blank=True)
    # Snapshot of the kind's checklist when the item opened, so later edits don't move goalposts.
    checklist = models.JSONField(default=list, blank=True)
    required_approvals = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # What was decided: approve / reject / edit / expire, or an escalation action (retry, skip ...).
    decision = models.CharField(max_length=20, blank=True)
    reason = models.TextField(blank=True)
    # The plan version an edit produced.
    result_plan = models.ForeignKey(
        Plan, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Review {self.pk} ({self.kind}, {self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == ReviewStatus.OPEN


class Approval(models.Model):
    """One reviewer's approval of an item; a quorum item is approved once enough exist."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "user"], name="approval_once_per_user"),
        ]


class AuditChainHead(models.Model):
    """The single row holding the chain's last seq and hash; writers lock it to append."""

    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="")


class AuditEntry(models.Model):
    """An append-only record of a decision or a configuration change, hash-chained to the one before.

    ``hash`` = sha256 over this entry's fields and ``prev_hash``; ``audit_verify``
    recomputes the chain. Ids of runs and items are plain numbers, not foreign
    keys, so deleting a run never deletes its history.
    """

    seq = models.PositiveBigIntegerField(unique=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The actor's username at the time ("system" for automatic actions); hashed, unlike the FK.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=40, db_index=True)
    object_type = models.CharField(max_length=40)
    object_id = models.CharField(max_length=64, blank=True)
    run_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    item_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["seq"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"#{self.seq} {self.actor_name} {self.action} {self.object_type} {self.object_id}"

    @property
    def outcome(self) -> str:
        """What the entry left behind: the decision taken (``abort``) before the status it maps to."""
        after = self.after if isinstance(self.after, dict) else {}
        return str(after.get("decision") or after.get("status") or "")

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Append-only: an existing entry is never rewritten through the ORM.
        if not self._state.adding:
            raise ValueError("audit entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("audit entries are append-only")


class EscalationCause(models.TextChoices):
    UNKNOWN_TOOL = "unknown_tool", "The planner chose an unknown tool"
    EVALUATOR_FAIL = "evaluator_fail", "Evaluator failed and replans are exhausted"
    BUDGET_BREACHED = "budget_breached", "A budget was breached"
    PARTIAL_RUN = "partial_run", "A step may have partly run"
    LOW_CONFIDENCE = "low_confidence", "A gated low-confidence step"
    INVALID_PLANNER_OUTPUT = "invalid_planner_output", "Planner output still invalid after repair"
    NO_PLAYBOOK_MATCH = "no_playbook_match", "No stored playbook matches the task"
    PLANNER_NOT_CONFIGURED = (
        "planner_not_configured",
        "The planner is not configured (API key not set)",
    )
    PLANNER_UNAVAILABLE = "planner_unavailable", "The planner's model call failed"
    ROLLBACK_INCOMPLETE = "rollback_incomplete", "A rollback step failed: not everything was undone"


class EscalationAction(models.TextChoices):
    RETRY = "retry", "Retry the step"
    SKIP = "skip", "Skip the step"
    EDIT = "edit", "Edit the plan and resume"
    ROLLBACK = "rollback", "Roll back"
    ABORT = "abort", "Abort the run"
    MARK_DONE = "mark_done", "Mark the rollback step done by hand"
