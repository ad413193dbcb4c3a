"""The review queue: items waiting for a human, the policies that open them, and the audit trail.

Item statuses are written only by ``reviews.statemachine``; audit entries only by
``reviews.audit`` (append-only, hash-chained).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce

from runs.models import Plan, Run, Step, Task, Tool


class ReviewKind(models.TextChoices):
    PLAN_APPROVAL = "plan_approval", "Plan approval"
    STEP_GATE = "step_gate", "Step gate (low confidence)"
    ESCALATION = "escalation", "Escalation"
    # The planner asked the task's submitter a question; answered on the run page.
    CLARIFICATION = "clarification", "Clarifying question"
    # A planner's plan waiting for its submitter to confirm it; decided on the run page.
    CONFIRMATION = "confirmation", "Plan confirmation (submitter)"
    # A step's MCP tool asked for input mid-call; the call waits for the answer (a form).
    ELICITATION = "elicitation", "Input for a tool"


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
    """Something a reviewer must decide: a plan to approve, a gated step, an escalation.

    ``plan`` is the version under review: a reviewer's saved edit replaces it, and every
    decision names it (and its document's hash), so none lands on a version nobody saw.
    """

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
    # A step gate's binding: the hash of the gated step's params as they will run (references
    # resolved) when the gate opened; a decision naming other params is refused as stale.
    params_hash = models.CharField(max_length=64, blank=True)
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
    # The plan version the last edit produced (it is then also ``plan``, the version under review).
    result_plan = models.ForeignKey(
        Plan, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The risk of ``plan`` (``reviews.risk``), stored when the item opens and when its plan
    # changes, so the queue sorts and filters by risk without reading the plan's steps.
    risk_sensitive = models.BooleanField(default=False)
    risk_production = models.BooleanField(default=False)
    risk_min_confidence = models.FloatField(null=True, blank=True)
    risk_score = models.PositiveSmallIntegerField(default=0)
    # The run's submitter's username when the item opened: the queue's submitter order.
    submitter_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The open queue by risk (then due time), and its risk filter.
            models.Index(
                fields=["-risk_score", "due_at", "id"],
                condition=models.Q(status="open"),
                name="review_open_by_risk",
            ),
            models.Index(
                fields=["submitter_name", "created_at", "id"],
                condition=models.Q(status="open"),
                name="review_open_by_submitter",
            ),
            models.Index(fields=["created_at", "id"], name="review_by_created"),
        ]

    def __str__(self) -> str:
        return f"Review {self.pk} ({self.kind}, {self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == ReviewStatus.OPEN

    @property
    def cause_label(self) -> str:
        """The cause in words: an escalation cause's label, "approval policy", or the code itself."""
        return cause_label(self.cause)


def cause_label(cause: str) -> str:
    """A human label for an item's ``cause`` code (one place for the page and the API)."""
    if cause in EscalationCause.values:
        return str(EscalationCause(cause).label)
    return CAUSE_LABELS.get(cause, cause)


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
    PLANNER_FAILED = "planner_failed", "Planning failed again and again (attempts exhausted)"


# Causes of items that are not escalations.
CAUSE_LABELS = {
    "policy": "The approval policy holds the plan",
    "planner_question": "The planner asked the submitter a question",
}


class EscalationAction(models.TextChoices):
    """What a reviewer may do about an escalation; ``reviews.actions`` says which fit an item."""

    RETRY = "retry", "Retry the step"
    SKIP = "skip", "Skip the step"
    EDIT = "edit", "Edit the plan and resume"
    WRITE_PLAN = "write_plan", "Write the plan by hand"
    RAISE_BUDGET = "raise_budget", "Raise the budget and resume"
    ROLLBACK = "rollback", "Roll back"
    ABORT = "abort", "Abort the run"
    MARK_DONE = "mark_done", "Mark the rollback step done by hand"


# --------------------------------------------------------------------------- notifications
class NotifyEvent(models.TextChoices):
    """What happened to a review item that someone outside the page should hear about."""

    OPENED = "review.opened", "Item opened"
    NEAR_SLA = "review.near_sla", "Item nears its SLA"
    OVERDUE = "review.overdue", "Item is overdue"


def _choice_list(value: Any, choices: type[models.TextChoices], field: str) -> None:
    if not isinstance(value, list) or not set(value) <= set(choices.values):
        raise ValidationError({field: f"A list of: {', '.join(choices.values)}."})


class WebhookEndpoint(models.Model):
    """Where review events are POSTed, signed with the endpoint's secret (HMAC-SHA256)."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(
        max_length=500,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="http:// or https:// only.",
    )
    secret = models.CharField(max_length=200, help_text="Signs each body (HMAC-SHA256).")
    # Empty lists mean every event / every kind.
    events = models.JSONField(default=list, blank=True)
    kinds = models.JSONField(default=list, blank=True)
    slack = models.BooleanField(
        default=False, help_text='Send a Slack-compatible body ({"text": ...}) instead of JSON.'
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def clean(self) -> None:
        if len(self.secret or "") < 16:
            raise ValidationError({"secret": "Use a secret of at least 16 characters."})
        _choice_list(self.events, NotifyEvent, "events")
        _choice_list(self.kinds, ReviewKind, "kinds")

    @property
    def secret_hint(self) -> str:
        """The secret as lists show it: its last four characters only."""
        return f"…{self.secret[-4:]}" if len(self.secret) >= 16 else "…"

    @property
    def url_hint(self) -> str:
        """The URL's scheme and host: paths of chat webhooks are secrets themselves."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"

    def __str__(self) -> str:
        return self.name


class ReviewSubscription(models.Model):
    """A reviewer who wants email about some kinds of items and some events."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_subscription"
    )
    # Empty lists mean every event / every kind.
    events = models.JSONField(default=list, blank=True)
    kinds = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user__username"]

    def clean(self) -> None:
        _choice_list(self.events, NotifyEvent, "events")
        _choice_list(self.kinds, ReviewKind, "kinds")

    def __str__(self) -> str:
        return f"subscription of {self.user}"


class Notice(models.Model):
    """One event of one item, recorded once (the unique pair) however many checkers see it."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="notices")
    event = models.CharField(max_length=20, choices=NotifyEvent.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "event"], name="notice_once_per_item_event"),
        ]

    def __str__(self) -> str:
        return f"{self.event} of review {self.item_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Delivery(models.Model):
    """A notice on its way to one webhook endpoint or one subscriber's mailbox (the outbox row)."""

    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="deliveries")
    # Exactly one of the two; SET_NULL keeps the log when an endpoint or a user is deleted.
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Where it went as it was then: the endpoint's scheme and host, or the address.
    target = models.CharField(max_length=500)
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["notice", "endpoint"],
                condition=models.Q(endpoint__isnull=False),
                name="delivery_once_per_endpoint",
            ),
            models.UniqueConstraint(
                fields=["notice", "recipient"],
                condition=models.Q(recipient__isnull=False),
                name="delivery_once_per_recipient",
            ),
        ]

    @property
    def channel(self) -> str:
        return "email" if self.recipient_id or "@" in self.target else "webhook"

    def __str__(self) -> str:
        return f"{self.notice} to {self.target}"


class DeliveryAttempt(models.Model):
    """One try of a delivery: the answer's status code or the error (the delivery log)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveSmallIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    ok = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "delivery log entry"
        verbose_name_plural = "delivery log"
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="attempt_once_per_number"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery}"
