"""Retention: purge what is due from finished runs, in short batches, leaving tombstones.

Four rules, each a number of days after a run finished (0: kept forever):

1. ``transcript``: the run's transcript events are deleted;
2. ``step_results``: every step's result and error are emptied (status, verdict stay);
3. ``model_io``: the prompts and responses inside ``planner.call`` events are emptied
   (the calls' tokens, latency and cost stay, for accounting);
4. ``run``: the whole run goes (task too, once it has no run left), review items included.

A rule never touches a run that is still going, an escalated run with a review item
still open, or an archived (imported) run. Each purge leaves a ``Tombstone`` (what,
when, which rule, how many rows) that the pages show in place of the data, and an
audit entry. The audit chain itself is never purged: its entries name runs by id,
so it still verifies after their rows are gone. Every batch is its own short
transaction, so writers wait at most one batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from reviews.audit import audit_record
from reviews.models import ReviewItem, ReviewStatus
from runs.lifecycle.snapshots import snapshot_export, snapshot_json
from runs.models import ModelAnswer, Run, RunArchive, Step, Task, Tombstone, TranscriptEvent
from runs.statemachine import RUN_TERMINAL

W = Tombstone.What
# Each rule's setting, in the order a sweep applies them (the whole run last).
RULES: tuple[tuple[str, str], ...] = (
    (W.TRANSCRIPT, "PLANNERWEB_RETAIN_TRANSCRIPT_DAYS"),
    (W.STEP_RESULTS, "PLANNERWEB_RETAIN_STEP_RESULTS_DAYS"),
    (W.LLM_CALLS, "PLANNERWEB_RETAIN_MODEL_IO_DAYS"),
    (W.RUN, "PLANNERWEB_RETAIN_RUNS_DAYS"),
)
LABELS: dict[str, str] = {
    W.TRANSCRIPT: "transcript",
    W.STEP_RESULTS: "step results and errors",
    W.LLM_CALLS: "model prompts and responses",
    W.RUN: "run",
}
MODEL_IO_KIND = "planner.call"


class RetentionError(ValueError):
    """A retention choice outside the bounds the deployment allows."""


def retain_days_check(days: int | None) -> int | None:
    """A task's own whole-run retention, checked against the admin's bounds."""
    if days is None:
        return None
    low, high = settings.PLANNERWEB_RETAIN_RUNS_MIN_DAYS, settings.PLANNERWEB_RETAIN_RUNS_MAX_DAYS
    if not low <= days <= high:
        raise RetentionError(f"retention must be between {low} and {high} days, not {days}")
    return days


@dataclass(frozen=True)
class Purged:
    run_id: int
    what: str
    rule: str
    rows: int


@dataclass
class PurgeReport:
    dry_run: bool
    items: list[Purged] = field(default_factory=list)

    def rows(self, what: str) -> int:
        return sum(p.rows for p in self.items if p.what == what)

    def lines(self) -> list[str]:
        verb = "would purge" if self.dry_run else "purged"
        return [
            f"run {p.run_id}: {verb} {LABELS[p.what]} ({p.rows} rows, {p.rule})" for p in self.items
        ]


def _days(setting: str) -> int:
    return max(0, int(getattr(settings, setting)))


def _due(what: str, setting: str, now: datetime) -> Iterator[tuple[int, str]]:
    """(run id, rule text) of every run this rule has come due for, oldest first."""
    days = _days(setting)
    finished: QuerySet[Run] = Run.objects.filter(
        status__in=RUN_TERMINAL, finished_at__isnull=False
    ).exclude(pk__in=RunArchive.objects.values("run_id"))
    finished = finished.exclude(
        pk__in=ReviewItem.objects.filter(status=ReviewStatus.OPEN).values("run_id")
    ).exclude(pk__in=Tombstone.objects.filter(what=what).values("run_id"))
    if what == W.LLM_CALLS:  # a purged transcript has no model calls left to thin
        finished = finished.exclude(
            pk__in=Tombstone.objects.filter(what=W.TRANSCRIPT).values("run_id")
        )
    rules: list[tuple[Q, str]] = []
    if what == W.RUN:
        # A task's own choice wins over the setting (even where the setting keeps forever).
        for own in (
            Task.objects.filter(retain_days__isnull=False)
            .values_list("retain_days", flat=True)
            .distinct()
        ):
            cutoff = now - timedelta(days=own or 0)
            rules.append(
                (Q(task__retain_days=own, finished_at__lt=cutoff), f"task retention {own} days")
            )
        if days:
            rules.append(
                (
                    Q(task__retain_days__isnull=True, finished_at__lt=now - timedelta(days=days)),
                    f"{setting}={days}",
                )
            )
    elif days:
        rules.append((Q(finished_at__lt=now - timedelta(days=days)), f"{setting}={days}"))
    for condition, text in rules:
        due = finished.filter(condition).order_by("finished_at", "pk")
        # Read before purging: no cursor stays open across the deletes.
        for run_id in list(due.values_list("pk", flat=True)):
            yield run_id, text


def _batches(qs: QuerySet[Any], size: int) -> Iterator[list[int]]:
    """Primary keys of ``qs`` a batch at a time (re-queried, so rows gone drop out)."""
    last = 0
    while True:
        ids = list(qs.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        last = ids[-1]


def _thin_model_io(run_id: int, size: int, dry_run: bool) -> int:
    calls = TranscriptEvent.objects.filter(run_id=run_id, kind=MODEL_IO_KIND)
    if dry_run:
        return calls.count()
    n = 0
    for ids in _batches(calls, size):
        with transaction.atomic():
            rows = list(TranscriptEvent.objects.filter(pk__in=ids))
            for row in rows:
                row.payload = {**row.payload, "prompt": [], "response": "", "purged": True}
            TranscriptEvent.objects.bulk_update(rows, ["payload"])
        n += len(ids)
    return n


def _delete(qs: QuerySet[Any], size: int, dry_run: bool) -> int:
    if dry_run:
        return qs.count()
    n = 0
    for ids in _batches(qs, size):
        with transaction.atomic():
            n += qs.model.objects.filter(pk__in=ids).delete()[1].get(qs.model._meta.label, 0)
    return n


def _empty_results(run_id: int, size: int, dry_run: bool) -> int:
    steps = Step.objects.filter(run_id=run_id).exclude(result__isnull=True, error="")
    if dry_run:
        return steps.count()
    n = 0
    for ids in _batches(steps, size):
        with transaction.atomic():
            n += Step.objects.filter(pk__in=ids).update(result=None, error="")
    return n


def _delete_run(run_id: int, size: int, dry_run: bool) -> tuple[int, dict[str, Any]]:
    run = Run.objects.select_related("task").get(pk=run_id)
    detail = {
        "title": run.task.title,
        "status": run.status,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
    if dry_run:
        return 1, detail
    if settings.PLANNERWEB_PURGE_SNAPSHOTS:  # cold storage first: no snapshot, no purge
        detail["snapshot"] = _snapshot_store(run_id)
    # The big tables first, a batch at a time; then the run row and what still hangs on it.
    _delete(TranscriptEvent.objects.filter(run_id=run_id), size, False)
    _delete(Step.objects.filter(run_id=run_id), size, False)
    with transaction.atomic():
        Run.objects.filter(pk=run_id).delete()
        if not Run.objects.filter(task_id=run.task_id).exists():
            Task.objects.filter(pk=run.task_id).delete()
    return 1, detail


def _snapshot_store(run_id: int) -> str:
    """Write the run's snapshot to the ``snapshots`` storage; the name it was stored under."""
    text = snapshot_json(snapshot_export(run_id=run_id))
    return storages["snapshots"].save(f"runs/run-{run_id}.json", ContentFile(text.encode()))


def _tombstone(run_id: int, what: str, rule: str, rows: int, detail: dict[str, Any]) -> None:
    with transaction.atomic():
        audit_record(
            actor=None,
            action="retention.purged",
            object_type="run",
            object_id=run_id,
            after={"what": what, "rows": rows, "rule": rule},
            run_id=None,  # the run's rows may be gone: nothing of its data is written here
        )
        Tombstone.objects.update_or_create(
            run_id=run_id,
            what=what,
            defaults={"rule": rule, "rows": rows, "purged_at": timezone.now(), "detail": detail},
        )


def _purge_one(run_id: int, what: str, rule: str, size: int, dry_run: bool) -> Purged:
    detail: dict[str, Any] = {}
    if what == W.TRANSCRIPT:
        rows = _delete(TranscriptEvent.objects.filter(run_id=run_id), size, dry_run)
        # The recorded provider answers are model output too: they go with the calls.
        rows += _delete(ModelAnswer.objects.filter(run_id=run_id), size, dry_run)
    elif what == W.STEP_RESULTS:
        rows = _empty_results(run_id, size, dry_run)
    elif what == W.LLM_CALLS:
        rows = _thin_model_io(run_id, size, dry_run)
        rows += _delete(ModelAnswer.objects.filter(run_id=run_id), size, dry_run)
    else:
        rows, detail = _delete_run(run_id, size, dry_run)
    if not dry_run:
        _tombstone(run_id, what, rule, rows, detail)
    return Purged(run_id, what, rule, rows)


def retention_purge(
    *, dry_run: bool = False, now: datetime | None = None, limit: int | None = None
) -> PurgeReport:
    """Apply every retention rule that is due; with ``dry_run``, only say what would go.

    ``limit``: at most this many (run, rule) purges in this sweep (the worker's bound).
    """
    now = now or timezone.now()
    size = max(1, settings.PLANNERWEB_PURGE_BATCH_ROWS)
    report = PurgeReport(dry_run=dry_run)
    gone: set[int] = set()
    for what, setting in RULES:
        for run_id, rule in _due(what, setting, now):
            if run_id in gone:
                continue
            if limit is not None and len(report.items) >= limit:
                return report
            report.items.append(_purge_one(run_id, what, rule, size, dry_run))
            if what == W.RUN:
                gone.add(run_id)
    return report


def run_tombstones(run_id: int) -> dict[str, Tombstone]:
    """What retention removed from a run, by kind (the run page's notes)."""
    return {t.what: t for t in Tombstone.objects.filter(run_id=run_id)}
