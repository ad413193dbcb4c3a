"""Reads for the review pages, the CLI and the API: the queue, an item's plan, the audit log."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import (
    Case,
    F,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.fields import BooleanField
from django.utils import timezone

from reviews.models import AuditEntry, ReviewItem, ReviewKind, ReviewStatus
from runs.models import Plan, Step
from runs.permissions import REVIEWERS

# The queue's orders: name -> (label, ORDER BY). Overdue and soonest due first by default.
SORTS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "due": ("overdue, then soonest due", ("-overdue", F("due_at").asc(nulls_last=True), "id")),
    "risk": (
        "highest risk first",
        ("-risk_score", "-overdue", F("due_at").asc(nulls_last=True), "id"),
    ),
    "oldest": ("oldest first", ("created_at", "id")),
    "newest": ("newest first", ("-created_at", "-id")),
    "submitter": ("by submitter", ("submitter_name", "created_at", "id")),
}
# Open items only: overdue first then soonest due is soonest due first (the indexes' order).
OPEN_SORTS: dict[str, tuple[Any, ...]] = {
    "due": (F("due_at").asc(nulls_last=True), "id"),
    "risk": ("-risk_score", F("due_at").asc(nulls_last=True), "id"),
}
# Risk levels for the queue's filter: the lowest score of each (see ``review_queue``).
RISK_LEVELS: dict[str, tuple[int, int]] = {"high": (3, 99), "medium": (1, 2), "low": (0, 0)}

# "Older than" choices for the queue's age filter.
AGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


@dataclass
class QueueFilters:
    """Parsed queue filters; ``problems`` lists the ones that were ignored and why."""

    kind: str = ""
    status: str = "open"
    age: str = ""
    run: int | None = None
    assignee: str = ""  # a username, "me", or "none"
    overdue: bool = False
    risk: str = ""  # high, medium or low
    sensitive: bool = False
    submitter: str = ""
    sort: str = "due"
    problems: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, data: Any) -> QueueFilters:
        f = cls()
        kind = data.get("kind", "")
        if kind in ReviewKind.values:
            f.kind = kind
        elif kind:
            f.problems.append(f"There is no item kind {kind[:40]!r}.")
        status = data.get("status", "open")
        if status in ReviewStatus.values or status == "all":
            f.status = status
        else:
            f.problems.append(f"There is no item status {status[:40]!r}.")
        age = data.get("age", "")
        if age in AGES:
            f.age = age
        elif age:
            f.problems.append(f"Age must be one of {', '.join(AGES)}.")
        run = data.get("run", "")
        if run:
            try:
                f.run = int(run)
            except ValueError:
                f.problems.append(f"Run must be a number, got {run[:40]!r}.")
        f.assignee = data.get("assignee", "")[:150]
        f.overdue = data.get("overdue") in ("1", "on", "true")
        f.sensitive = data.get("sensitive") in ("1", "on", "true")
        f.submitter = data.get("submitter", "")[:150]
        risk = data.get("risk", "")
        if risk in RISK_LEVELS:
            f.risk = risk
        elif risk:
            f.problems.append(f"Risk must be one of {', '.join(RISK_LEVELS)}.")
        sort = data.get("sort", "") or "due"
        if sort in SORTS:
            f.sort = sort
        else:
            f.problems.append(f"Sort must be one of {', '.join(SORTS)}.")
        return f


def risk_level(score: int | None) -> str:
    """``high``, ``medium`` or ``low`` for a risk score (``RISK_LEVELS``)."""
    for level, (low, high) in RISK_LEVELS.items():
        if low <= (score or 0) <= high:
            return level
    return "low"


def review_queue(filters: QueueFilters, *, user: Any) -> QuerySet[ReviewItem]:
    """Items matching ``filters`` in the order asked for, annotated with ``overdue``.

    Risk is read from the columns each item stores (``reviews.risk``), so sorting and
    filtering by it, like the submitter order, walks an index of the open items.
    """
    now = timezone.now()
    qs = ReviewItem.objects.select_related(
        "run", "run__task", "run__task__submitted_by", "plan", "step", "assignee", "decided_by"
    ).annotate(
        overdue=Case(
            When(status=ReviewStatus.OPEN, due_at__lt=now, then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        ),
    )
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.status != "all":
        qs = qs.filter(status=filters.status)
    if filters.age:
        qs = qs.filter(created_at__lte=now - AGES[filters.age])
    if filters.run is not None:
        qs = qs.filter(run_id=filters.run)
    if filters.assignee == "me":
        qs = qs.filter(assignee=user)
    elif filters.assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif filters.assignee:
        qs = qs.filter(assignee__username=filters.assignee)
    if filters.overdue:
        qs = qs.filter(overdue=True)
    if filters.sensitive:
        qs = qs.filter(risk_sensitive=True)
    if filters.submitter:
        qs = qs.filter(submitter_name=filters.submitter)
    if filters.risk:
        low, high = RISK_LEVELS[filters.risk]
        qs = qs.filter(risk_score__gte=low, risk_score__lte=high)
    if filters.status == ReviewStatus.OPEN and filters.sort in OPEN_SORTS:
        return qs.order_by(*OPEN_SORTS[filters.sort])
    return qs.order_by(*SORTS[filters.sort][1])


def review_item(item_id: int) -> ReviewItem:
    return (
        ReviewItem.objects.select_related(
            "run", "run__task", "run__task__submitted_by", "plan", "step", "assignee", "decided_by"
        )
        .prefetch_related("approvals__user")
        .get(pk=item_id)
    )


def open_escalation(run_id: int) -> ReviewItem | None:
    """The run's open escalation item (the newest, should there be several), or None."""
    return (
        ReviewItem.objects.filter(
            run_id=run_id, kind=ReviewKind.ESCALATION, status=ReviewStatus.OPEN
        )
        .order_by("-id")
        .first()
    )


def plan_steps(plan: Plan | None) -> list[Step]:
    if plan is None:
        return []
    return list(plan.steps.select_related("tool").order_by("phase", "position"))


def plan_edges(steps: list[Step]) -> list[tuple[str, str]]:
    """The dependency graph as (from, to) edges in run order."""
    return [(dep, s.key) for s in steps if s.phase == Step.Phase.MAIN for dep in s.depends_on]


def reviewers() -> QuerySet[Any]:
    """Users an item may be assigned to: the reviewers group and staff."""
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(groups__name=REVIEWERS) | Q(is_staff=True))
        .distinct()
        .order_by("username")
    )


@dataclass
class AuditFilters:
    run: int | None = None
    item: int | None = None
    actor: str = ""
    problems: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, data: Any) -> AuditFilters:
        f = cls()
        for name in ("run", "item"):
            raw = data.get(name, "")
            if raw:
                try:
                    setattr(f, name, int(raw))
                except ValueError:
                    f.problems.append(f"{name.title()} must be a number, got {raw[:40]!r}.")
        f.actor = data.get("actor", "")[:150]
        return f


def audit_actors() -> list[str]:
    """Every actor name the audit log holds (the audit page's reviewer choices)."""
    return list(
        AuditEntry.objects.order_by("actor_name").values_list("actor_name", flat=True).distinct()
    )


def audit_entries(filters: AuditFilters) -> QuerySet[AuditEntry]:
    qs = AuditEntry.objects.all()
    if filters.run is not None:
        qs = qs.filter(run_id=filters.run)
    if filters.item is not None:
        qs = qs.filter(item_id=filters.item)
    if filters.actor:
        qs = qs.filter(actor_name=filters.actor)
    return qs.order_by("seq")


def next_open_item(after_id: int) -> int | None:
    """The open item a reviewer meets next in the queue (soonest due, then oldest), not ``after_id``."""
    return (
        ReviewItem.objects.filter(status=ReviewStatus.OPEN)
        .exclude(pk=after_id)
        .order_by(F("due_at").asc(nulls_last=True), "id")
        .values_list("pk", flat=True)
        .first()
    )
