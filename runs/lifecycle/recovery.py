"""Find runs that should be moving but that no live worker holds, and queue them again.

Two ways a run gets orphaned: its worker died (the lease stops being renewed
and expires), or the process died between committing the run and enqueueing
its task (a queued run with no task). Workers call ``runs_recover``
periodically; the claim's compare-and-swap makes a duplicate task harmless, and a compare-and-swap on
the lease here keeps concurrent sweepers from queueing a run twice.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from runs.events import RunRequeued
from runs.execution.journal_link import apply_held
from runs.lifecycle.dispatch import enqueue_run, run_task_paths
from runs.lifecycle.subplan_links import subplans_wake_due
from runs.models import ResourceLock, Run, RunStatus, TranscriptEvent
from runs.statemachine import RUN_ACTIVE, NewEvent, append_events

_BATCH = 200


def runs_recover() -> list[int]:
    """Queue an execution task for every orphaned run; returns their ids.

    Then wake the parents whose stopped child's wake-up was lost (``subplans_wake_due``).
    """
    requeued = _orphans_requeue()
    subplans_wake_due()
    return requeued


def _orphans_requeue() -> list[int]:
    now = timezone.now()
    grace = timedelta(seconds=settings.PLANNERWEB_HEARTBEAT_SECONDS * 5)
    lapsed = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    orphans = list(
        Run.objects.filter(
            lapsed
            & (
                Q(status__in=RUN_ACTIVE | {RunStatus.PLANNING})
                | Q(status=RunStatus.QUEUED, created_at__lt=now - grace)
            )
        )
        .order_by("created_at")
        .values_list("pk", "status", "lease_owner", "lease_expires_at")[:_BATCH]
    )
    if not orphans:
        return []
    waiting = _runs_with_ready_tasks()
    requeued = []
    for run_id, status, owner, expires in orphans:
        if run_id in waiting:
            continue
        with transaction.atomic():
            # Only one sweeper wins this compare-and-swap; the others skip the run. The
            # lease stays lapsed (so the task can claim it) but no longer names the
            # dead worker, which is thereby fenced out should it come back.
            if not Run.objects.filter(pk=run_id, status=status, lease_expires_at=expires).update(
                lease_owner="", lease_expires_at=now
            ):
                continue
            apply_held(run_id)  # what its worker committed, before the requeue's event
            # Its steps' resource locks must not wait for the run to be taken over.
            ResourceLock.objects.filter(run_id=run_id).delete()
            if status == RunStatus.QUEUED:
                reason = "queued run had no task (lost before it was enqueued)"
            else:
                reason = f"lease of {owner or 'its worker'} expired while {status}"
            append_events(
                run_id, [NewEvent(TranscriptEvent.Role.SYSTEM, RunRequeued(reason=reason))]
            )
            enqueue_run(run_id)
        requeued.append(run_id)
    return requeued


def _runs_with_ready_tasks() -> set[int]:
    # A run resumed after a reviewer's decision waits on a resume_run task instead.
    rows = DBTaskResult.objects.ready().filter(task_path__in=run_task_paths())
    return {
        args["args"][0]
        for args in rows.values_list("args_kwargs", flat=True)
        if isinstance(args, dict) and args.get("args")
    }
