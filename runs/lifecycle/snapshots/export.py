"""Export a run as one snapshot document: task, plan versions, steps, transcript, model
calls, review items and audit entries, redacted, with no email address and no secret.

Users appear by username only. Every string goes through the run's redactor once more
on the way out, so a value stored before a redaction rule existed still leaves masked.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from reviews.models import Approval, AuditEntry, ReviewItem
from runs.lifecycle.snapshots.document import FORMAT, FORMAT_VERSION, snapshot_validate
from runs.models import LlmCall, Plan, Run, RunArchive, Step, Task, TranscriptEvent
from runs.redaction import Redactor, redaction_counts

_TASK_FIELDS = (
    "title",
    "description",
    "planner",
    "model",
    "mode",
    "temperature",
    "max_tokens",
    "max_replans",
    "max_steps",
    "budget_max_steps",
    "budget_max_tokens",
    "budget_max_cost",
    "budget_max_wall_seconds",
)
_STEP_FIELDS = (
    "key",
    "phase",
    "position",
    "tool_name",
    "params",
    "depends_on",
    "undoes",
    "description",
    "confidence",
    "locks",
    "status",
    "attempts",
    "result",
    "error",
    "started_at",
    "finished_at",
    "verdict",
    "verdict_reason",
    "idempotency_key",
)


def _plain(value: Any) -> Any:
    """A model field's value as JSON: times in ISO 8601, decimals and UUIDs as strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


def _fields(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _plain(getattr(obj, name)) for name in names}


def _username(user: User | None) -> str | None:
    return user.get_username() if user is not None else None


def _task(task: Task) -> dict[str, Any]:
    return {
        **_fields(task, _TASK_FIELDS),
        "submitted_by": _username(task.submitted_by),
        "created_at": _plain(task.created_at),
    }


def _run(run: Run) -> dict[str, Any]:
    return {
        "status": run.status,
        "stop_reason": run.stop_reason,
        "created_at": _plain(run.created_at),
        "started_at": _plain(run.started_at),
        "finished_at": _plain(run.finished_at),
        "max_parallel": run.max_parallel,
        "cancel_requested_at": _plain(run.cancel_requested_at),
        "cancel_requested_by": _username(run.cancel_requested_by),
        "cancel_rollback": run.cancel_rollback,
        "cancel_reason": run.cancel_reason,
        "current_plan_version": run.current_plan.version if run.current_plan else None,
        "redacted": redaction_counts(run.redaction),
    }


def _plans(run: Run) -> list[dict[str, Any]]:
    plans = list(Plan.objects.filter(run=run).select_related("parent", "created_by"))
    steps: dict[int, list[Step]] = {}
    for step in Step.objects.filter(run=run).order_by("plan_id", "phase", "position"):
        steps.setdefault(step.plan_id, []).append(step)
    return [
        {
            "id": p.pk,
            "version": p.version,
            "parent_version": p.parent.version if p.parent else None,
            "source": p.source,
            "created_by": _username(p.created_by),
            "created_at": _plain(p.created_at),
            "goal": p.goal,
            "document": p.document,
            "rollback": p.rollback,
            "is_valid": p.is_valid,
            "errors": p.errors,
            "diff": p.diff,
            "steps": [{"id": s.pk, **_fields(s, _STEP_FIELDS)} for s in steps.get(p.pk, [])],
        }
        for p in plans
    ]


def _transcript(run: Run) -> list[dict[str, Any]]:
    events = TranscriptEvent.objects.filter(run=run).order_by("seq")
    return [
        {
            "seq": e.seq,
            "role": e.role,
            "kind": e.kind,
            "payload": e.payload,
            "created_at": _plain(e.created_at),
        }
        for e in events.iterator(chunk_size=2000)
    ]


def _llm_calls(run: Run) -> list[dict[str, Any]]:
    calls = LlmCall.objects.filter(run=run).select_related("plan").order_by("id")
    names = (
        "provider",
        "model",
        "purpose",
        "tokens_in",
        "tokens_out",
        "latency_ms",
        "cost",
        "ok",
        "error",
        "created_at",
    )
    return [
        {"id": c.pk, **_fields(c, names), "plan_version": c.plan.version if c.plan else None}
        for c in calls
    ]


def _reviews(run: Run) -> list[dict[str, Any]]:
    items = list(
        ReviewItem.objects.filter(run=run)
        .select_related("plan", "step", "decided_by", "assignee", "result_plan")
        .order_by("id")
    )
    approvals: dict[int, list[dict[str, Any]]] = {}
    for a in Approval.objects.filter(item__run=run).select_related("user").order_by("id"):
        approvals.setdefault(a.item_id, []).append(
            {"user": _username(a.user), "created_at": _plain(a.created_at)}
        )
    names = (
        "kind",
        "status",
        "cause",
        "reason_opened",
        "context",
        "checklist",
        "required_approvals",
        "created_at",
        "due_at",
        "decided_at",
        "decision",
        "reason",
    )
    return [
        {
            "id": i.pk,
            **_fields(i, names),
            "plan_version": i.plan.version if i.plan else None,
            "step": i.step.key if i.step else None,
            "assignee": _username(i.assignee),
            "decided_by": _username(i.decided_by),
            "result_plan_version": i.result_plan.version if i.result_plan else None,
            "approvals": approvals.get(i.pk, []),
        }
        for i in items
    ]


def _audit(run: Run) -> list[dict[str, Any]]:
    names = (
        "seq",
        "actor_name",
        "action",
        "object_type",
        "object_id",
        "before",
        "after",
        "reason",
        "created_at",
        "prev_hash",
        "hash",
    )
    return [_fields(e, names) for e in AuditEntry.objects.filter(run_id=run.pk).order_by("seq")]


def _provenance(run: Run) -> list[dict[str, Any]]:
    """Where the run came from before: each earlier plannerweb it was imported from."""
    archive = RunArchive.objects.filter(run=run).first()
    if archive is None:
        return []
    return [
        {
            "source": archive.source,
            "run_id": archive.source_run_id,
            "exported_at": _plain(archive.exported_at),
            "imported_at": _plain(archive.imported_at),
            "digest": archive.digest,
        }
    ]


def snapshot_export(*, run_id: int) -> dict[str, Any]:
    """The snapshot document of run ``run_id``, validated against its schema.

    Raises ``Run.DoesNotExist`` for an unknown run.
    """
    run = Run.objects.select_related(
        "task", "task__submitted_by", "current_plan", "cancel_requested_by"
    ).get(pk=run_id)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "source": {"instance": settings.PLANNERWEB_BASE_URL, "run_id": run.pk},
        "provenance": _provenance(run),
        "task": _task(run.task),
        "run": _run(run),
        "plans": _plans(run),
        "transcript": _transcript(run),
        "llm_calls": _llm_calls(run),
        "reviews": _reviews(run),
        "audit": _audit(run),
    }
    redacted: dict[str, Any] = _redacted(document, Redactor(run.pk))
    snapshot_validate(redacted)
    return redacted


# The document's own bookkeeping: times, hashes and keys, never content, so never redacted
# (a timestamp's microseconds would look like a phone number to the redactor).
_STRUCTURAL = frozenset({"hash", "prev_hash", "digest", "idempotency_key", "format", "instance"})
# Free-form values: redacted whole, so a string under a secret-looking key is masked too.
_CONTENT = frozenset(
    {"payload", "params", "result", "document", "rollback", "errors", "diff", "context"}
    | {"checklist", "before", "after"}
)


def _redacted(value: Any, red: Redactor, key: str = "") -> Any:
    """``value`` with its content redacted once more and its bookkeeping left exact."""
    if key in _STRUCTURAL or key.endswith("_at"):
        return value
    if key in _CONTENT:
        return red.value(value)
    if isinstance(value, str):
        return red.text(value)
    if isinstance(value, dict):
        return {k: _redacted(v, red, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, red, key) for v in value]
    return value
