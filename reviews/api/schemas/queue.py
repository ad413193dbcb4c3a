"""In/Out schemas of the review queue resource: filters, items, assignments, decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.utils import timezone
from ninja import Field, Schema

from reviews.actions import allowed_actions
from reviews.models import ReviewItem, ReviewKind, ReviewStatus
from reviews.selectors import risk_level
from runs.api.inputs import DecisionIn, In, QueryIn
from runs.api.paging import PageOut
from runs.plan_versions import plan_hash

Age = Literal["1h", "24h", "7d"]


class QueueFiltersIn(QueryIn):
    """The queue page's filters; each one given narrows the list."""

    kind: ReviewKind | None = Field(None, description="Item kind.")
    status: Literal["open", "approved", "rejected", "edited", "expired", "all"] = Field(
        "open", description="Item status, or `all`."
    )
    age: Age | None = Field(None, description="Opened longer ago than this.")
    run: int | None = Field(None, ge=1, le=2**63 - 1, description="Items of this run only.")
    assignee: str | None = Field(
        None, max_length=150, description="A username, `me`, or `none` (unclaimed)."
    )
    overdue: bool = Field(False, description="Only open items past their due time.")
    risk: Literal["high", "medium", "low"] | None = Field(
        None, description="Only items of this risk level (see `risk_score`)."
    )
    sensitive: bool = Field(False, description="Only items whose plan uses a sensitive tool.")
    submitter: str | None = Field(
        None, max_length=150, description="Only items of runs this user submitted."
    )
    sort: Literal["due", "risk", "oldest", "newest", "submitter"] = Field(
        "due",
        description="`due`: overdue first, then soonest due; `risk`: highest first; "
        "`oldest`, `newest`: by opening time; `submitter`: by the run's submitter.",
    )


class ReviewItemOut(Schema):
    id: int
    kind: ReviewKind
    status: ReviewStatus
    cause: str
    reason_opened: str
    run: int
    run_title: str
    run_status: str
    plan_version: int | None
    step: str | None = Field(description="The gated or failed step's key, if any.")
    checklist: list[str] = Field(description="Tick each by its index when deciding.")
    required_approvals: int
    created_at: datetime
    due_at: datetime | None
    overdue: bool
    assignee: str | None
    claimed_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    decision: str
    reason: str
    result_plan_version: int | None = Field(description="The plan version an edit produced.")
    cause_label: str = Field(description="The cause in words.")
    submitter: str | None = Field(description="Who submitted the item's run.")
    age_seconds: int = Field(description="Seconds since the item opened.")
    sla: Literal["overdue", "due", "closed", "none"] = Field(
        description="`overdue`: open past its due time; `due`: open, not yet due; "
        "`closed`: decided; `none`: open without a due time."
    )
    risk_score: int = Field(
        description="2 for a sensitive tool, 2 for a step param `env`, `environment` or "
        "`target` equal to `production`, 1 for a step confidence below the threshold."
    )
    risk: Literal["high", "medium", "low"] = Field(description="3 or more is high, 0 low.")
    sensitive: bool = Field(description="The plan under review uses a sensitive tool.")
    production: bool = Field(description="A step of the plan targets production.")
    min_confidence: float | None = Field(description="The planner's lowest step confidence.")

    @staticmethod
    def resolve_run(item: ReviewItem) -> int:
        return item.run_id

    @staticmethod
    def resolve_run_title(item: ReviewItem) -> str:
        return item.run.task.title

    @staticmethod
    def resolve_run_status(item: ReviewItem) -> str:
        return item.run.status

    @staticmethod
    def resolve_plan_version(item: ReviewItem) -> int | None:
        return item.plan.version if item.plan is not None else None

    @staticmethod
    def resolve_step(item: ReviewItem) -> str | None:
        return item.step.key if item.step is not None else None

    @staticmethod
    def resolve_checklist(item: ReviewItem) -> list[str]:
        return [str(c) for c in item.checklist or []]

    @staticmethod
    def resolve_overdue(item: ReviewItem) -> bool:
        annotated = getattr(item, "overdue", None)
        if annotated is not None:
            return bool(annotated)
        return bool(item.is_open and item.due_at is not None and item.due_at < timezone.now())

    @staticmethod
    def resolve_assignee(item: ReviewItem) -> str | None:
        return item.assignee.get_username() if item.assignee is not None else None

    @staticmethod
    def resolve_decided_by(item: ReviewItem) -> str | None:
        return item.decided_by.get_username() if item.decided_by is not None else None

    @staticmethod
    def resolve_result_plan_version(item: ReviewItem) -> int | None:
        return item.result_plan.version if item.result_plan is not None else None

    @staticmethod
    def resolve_submitter(item: ReviewItem) -> str | None:
        user = item.run.task.submitted_by
        return user.get_username() if user is not None else None

    @staticmethod
    def resolve_age_seconds(item: ReviewItem) -> int:
        return max(0, int((timezone.now() - item.created_at).total_seconds()))

    @staticmethod
    def resolve_sla(item: ReviewItem) -> str:
        if not item.is_open:
            return "closed"
        if item.due_at is None:
            return "none"
        return "overdue" if item.due_at < timezone.now() else "due"

    @staticmethod
    def resolve_risk(item: ReviewItem) -> str:
        return risk_level(item.risk_score)

    @staticmethod
    def resolve_sensitive(item: ReviewItem) -> bool:
        return item.risk_sensitive

    @staticmethod
    def resolve_production(item: ReviewItem) -> bool:
        return item.risk_production

    @staticmethod
    def resolve_min_confidence(item: ReviewItem) -> float | None:
        return item.risk_min_confidence


class ReviewItemDetailOut(ReviewItemOut):
    plan_hash: str | None = Field(
        description="SHA-256 of the plan version's document: send it back with a decision."
    )
    params_hash: str | None = Field(
        description="A step gate's binding: the hash of the gated step's params as they will run."
    )
    approvals: list[str] = Field(
        description="Who approved the current plan version so far (quorum items)."
    )
    context: dict[str, Any] = Field(description="Failure report, partial results and the like.")
    plan: Any = Field(description="The plan under review as submitted, if any.")
    allowed_actions: list[str] = Field(
        description="An open escalation: the actions it offers now (`POST /runs/{run}/resume`)."
    )

    @staticmethod
    def resolve_plan_hash(item: ReviewItem) -> str | None:
        return plan_hash(item.plan) or None

    @staticmethod
    def resolve_params_hash(item: ReviewItem) -> str | None:
        return item.params_hash or None

    @staticmethod
    def resolve_approvals(item: ReviewItem) -> list[str]:
        return [a.user.get_username() for a in item.approvals.all()]

    @staticmethod
    def resolve_context(item: ReviewItem) -> dict[str, Any]:
        return item.context if isinstance(item.context, dict) else {"value": item.context}

    @staticmethod
    def resolve_allowed_actions(item: ReviewItem) -> list[str]:
        return allowed_actions(item, item.run)

    @staticmethod
    def resolve_plan(item: ReviewItem) -> Any:
        return item.plan.document if item.plan is not None else None


class ReviewPageOut(PageOut):
    items: list[ReviewItemOut]


class AssignIn(In):
    assignee: str | None = Field(
        None, max_length=150, description="A reviewer's username; null to unassign."
    )


HASH_PATTERN = r"^[0-9a-f]{64}$"


class DecideIn(DecisionIn):
    """A decision on a plan approval or a step gate, naming the plan version it is about."""

    decision: Literal["approve", "reject", "edit"]
    plan_version: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description=(
            "The item's `plan_version` you reviewed; required to approve or edit. Another "
            "version than the item's current one is refused with 409 `stale_plan`."
        ),
    )
    plan_hash: str | None = Field(
        None,
        pattern=HASH_PATTERN,
        description="The item's `plan_hash` you reviewed; a different one is 409 `stale_plan`.",
    )
    params_hash: str | None = Field(
        None,
        pattern=HASH_PATTERN,
        description=(
            "A step gate's `params_hash`; required to approve a step gate. Params that "
            "changed are 409 `stale_plan`."
        ),
    )
    approve: bool = Field(
        False,
        strict=True,
        description=(
            "Only with `edit`: also approve the new version in the same transaction (save "
            "and approve). Without it the edit is saved and waits for an approval."
        ),
    )
