"""Executor pools: the rows through which a run's owner and a pool worker share a step.

A tool that names a queue (``Tool.queue``) is called only by workers serving that
queue (``manage.py db_worker --queue NAME``). The owner of the run keeps the
step's state and its journal; the call itself goes through a ``RemoteStep`` row:

1. the owner writes it ``pending`` with a ``step.queued`` event (one transaction);
2. a pool worker claims it (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite
   serialises writers), sets it ``running`` with a lease and a ``step.claimed``
   event, all committed before the tool is called;
3. the worker renews the lease while the tool runs and writes the outcome with a
   compare-and-swap on (status, worker, attempt): a worker that lost the row
   writes nothing;
4. the owner reads the outcome and records the step through its journal. A lease
   that lapsed (the worker died) is settled by the owner: the step is handed out
   again when its tool is repeatable, else it is reported as possibly partly run.

Worker heartbeats (``WorkerBeat``) tell whether a queue has a live worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from runs.events import StepClaimed, StepQueued
from runs.models import RemoteStep, Step, Tool, TranscriptEvent, WorkerBeat
from runs.redaction import Redactor
from runs.statemachine import NewEvent, append_events

RS = RemoteStep.Status
ANY_QUEUE = "*"
_EXECUTOR = TranscriptEvent.Role.EXECUTOR.value
_OPEN = (RS.PENDING, RS.RUNNING)
# A tool queue's name: lower-case letters, digits, '-' and '_' (``default`` and
# ``notifications`` name the task queues of runs and deliveries).
QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
RESERVED_QUEUES = ("default", "notifications")


def queue_problems(name: object) -> list[str]:
    """What is wrong with a tool's queue name ("" is fine: the run's own worker)."""
    if name in ("", None):
        return []
    if not isinstance(name, str) or not QUEUE_NAME.match(name):
        return [
            f"{name!r} is not a queue name: lower-case letters, digits, '-' and '_', "
            "at most 40 characters"
        ]
    if name in RESERVED_QUEUES:
        return [f"{name!r} names a task queue of the workers; choose another name"]
    return []


def lease_seconds() -> float:
    """How long a pool worker's claim lasts without a renewal (five heartbeats)."""
    return float(settings.PLANNERWEB_HEARTBEAT_SECONDS) * 5


def beat_window() -> timedelta:
    """How recent a worker's heartbeat must be for it to count as live."""
    return timedelta(seconds=max(3.0, lease_seconds()))


@dataclass(frozen=True)
class RemoteSnapshot:
    """What the owner needs of its remote step."""

    id: int
    status: str
    attempt: int
    result: Any
    error: str
    retryable: bool
    worker_id: str
    lapsed: bool  # running, and the worker's lease ran out


@dataclass(frozen=True)
class Claimed:
    """A remote step a pool worker took: what it needs to call the tool."""

    id: int
    run_id: int
    step_id: int
    step_key: str
    tool_id: int | None
    tool_name: str
    params: Any
    idempotency_key: str
    attempt: int


# -- the owner's side ---------------------------------------------------------------------
@transaction.atomic
def remote_step_submit(*, step_id: int, queue: str, params: Any, adopt: bool) -> RemoteSnapshot:
    """Hand a step to its queue, or take up the row it already has; returns the row's state.

    ``adopt``: the run was taken over with the step running; whatever its row holds
    (in flight or finished) is the step's call. Otherwise a row still in flight is
    waited on (the call is never made twice at once); a finished row is handed out
    again only for a retry or a fresh start of the step.
    """
    step = Step.objects.select_related("run").get(pk=step_id)
    row = RemoteStep.objects.select_for_update().filter(step_id=step_id).first()
    if row is not None and (row.status in _OPEN or (adopt and row.status != RS.CANCELLED)):
        return _snapshot(row)
    if row is None:
        row = RemoteStep(step=step, run_id=step.run_id, queue=queue, attempt=1)
    else:
        row.attempt += 1  # a stale worker's outcome no longer matches
    row.queue, row.status, row.params = queue, RS.PENDING, params
    row.worker_id, row.lease_until, row.result, row.error = "", None, None, ""
    row.retryable, row.started_at, row.finished_at = True, None, None
    row.save()
    event = StepQueued(
        step_id=step_id,
        step=step.key,
        queue=queue,
        attempt=row.attempt,
        live_workers=len(live_workers(queue)),
    )
    append_events(step.run_id, [NewEvent(_EXECUTOR, event)])
    return _snapshot(row)


def remote_step_read(row_id: int) -> RemoteSnapshot:
    return _snapshot(RemoteStep.objects.get(pk=row_id))


@transaction.atomic
def remote_step_settle_lapsed(*, row_id: int, repeatable: bool) -> RemoteSnapshot:
    """The worker holding the row stopped renewing it: hand it out again, or fail it as lost."""
    row = RemoteStep.objects.select_for_update().get(pk=row_id)
    if row.status != RS.RUNNING or row.lease_until is None or row.lease_until >= timezone.now():
        return _snapshot(row)
    who = row.worker_id
    row.worker_id, row.lease_until = "", None
    if repeatable:
        row.status, row.attempt, row.started_at = RS.PENDING, row.attempt + 1, None
        row.save()
        event = StepQueued(
            step_id=row.step_id,
            step=row.step.key,
            queue=row.queue,
            attempt=row.attempt,
            live_workers=len(live_workers(row.queue)),
        )
        append_events(row.run_id, [NewEvent(_EXECUTOR, event)])
    else:
        row.status, row.retryable, row.finished_at = RS.FAILED, False, timezone.now()
        row.error = f"its pool worker {who} stopped while it was running"
        row.save()
    return _snapshot(row)


def remote_step_cancel(*, row_id: int | None = None, run_id: int | None = None) -> int:
    """Cancel a run's remote steps still pending or running; a pool worker drops them."""
    rows = RemoteStep.objects.filter(status__in=_OPEN)
    if row_id is not None:
        rows = rows.filter(pk=row_id)
    if run_id is not None:
        rows = rows.filter(run_id=run_id)
    return rows.update(status=RS.CANCELLED, finished_at=timezone.now(), lease_until=None, params={})


def _snapshot(row: RemoteStep) -> RemoteSnapshot:
    lapsed = (
        row.status == RS.RUNNING
        and row.lease_until is not None
        and row.lease_until < timezone.now()
    )
    return RemoteSnapshot(
        id=row.pk,
        status=row.status,
        attempt=row.attempt,
        result=row.result,
        error=row.error,
        retryable=row.retryable,
        worker_id=row.worker_id,
        lapsed=lapsed,
    )


# -- the pool worker's side ---------------------------------------------------------------
def remote_step_claim(*, queues: list[str], worker_id: str) -> Claimed | None:
    """Take the oldest pending remote step of ``queues`` ("*": any); None when there is none."""
    with transaction.atomic():
        pending = RemoteStep.objects.filter(status=RS.PENDING)
        if ANY_QUEUE not in queues:
            pending = pending.filter(queue__in=queues)
        row = (
            pending.select_for_update(skip_locked=True)
            .select_related("step")
            .order_by("id")
            .first()
        )
        if row is None:
            return None
        until = timezone.now() + timedelta(seconds=lease_seconds())
        # Compare-and-swap: on SQLite (no row locks) another worker may have taken it.
        taken = RemoteStep.objects.filter(pk=row.pk, status=RS.PENDING).update(
            status=RS.RUNNING, worker_id=worker_id, lease_until=until, started_at=timezone.now()
        )
        if not taken:
            return None
        step = row.step
        event = StepClaimed(step_id=step.pk, step=step.key, queue=row.queue, worker=worker_id)
        append_events(row.run_id, [NewEvent(_EXECUTOR, event)])
        return Claimed(
            id=row.pk,
            run_id=row.run_id,
            step_id=step.pk,
            step_key=step.key,
            tool_id=step.tool_id,
            tool_name=step.tool_name,
            params=row.params,
            idempotency_key=str(step.idempotency_key),
            attempt=row.attempt,
        )


def remote_step_renew(*, claimed: Claimed, worker_id: str) -> bool:
    """Extend the worker's lease; False when the row is no longer its own (cancelled, lost)."""
    until = timezone.now() + timedelta(seconds=lease_seconds())
    return bool(
        RemoteStep.objects.filter(
            pk=claimed.id, status=RS.RUNNING, worker_id=worker_id, attempt=claimed.attempt
        ).update(lease_until=until)
    )


def remote_step_finish(
    *,
    claimed: Claimed,
    worker_id: str,
    ok: bool,
    result: Any = None,
    error: str = "",
    retryable: bool = True,
) -> bool:
    """Write the call's outcome (redacted); False when the row was no longer the worker's."""
    red = Redactor(claimed.run_id)
    return bool(
        RemoteStep.objects.filter(
            pk=claimed.id, status=RS.RUNNING, worker_id=worker_id, attempt=claimed.attempt
        ).update(
            status=RS.SUCCEEDED if ok else RS.FAILED,
            result=red.value(result) if ok else None,
            error=red.value(error) if error else "",
            retryable=retryable,
            lease_until=None,
            finished_at=timezone.now(),
            params={},  # the resolved params may hold earlier results: kept only while needed
        )
    )


def worker_beat(*, worker_id: str, queues: list[str]) -> None:
    """Record that a pool worker is alive and which queues it serves."""
    WorkerBeat.objects.update_or_create(
        worker_id=worker_id[-100:], defaults={"queues": list(queues), "seen_at": timezone.now()}
    )


def worker_gone(*, worker_id: str) -> None:
    """A pool worker stopping cleanly: it no longer counts as live."""
    WorkerBeat.objects.filter(worker_id=worker_id[-100:]).delete()


# -- what pages, the API and metrics show -------------------------------------------------
def live_workers(queue: str) -> list[str]:
    """The workers whose recent heartbeat says they serve ``queue``."""
    since = timezone.now() - beat_window()
    return [
        w
        for w, queues in WorkerBeat.objects.filter(seen_at__gte=since).values_list(
            "worker_id", "queues"
        )
        if queue in queues or ANY_QUEUE in queues
    ]


@dataclass(frozen=True)
class QueueState:
    """One queue: steps waiting and running, and the live workers serving it."""

    name: str
    pending: int
    running: int
    workers: list[str]
    tools: list[str]

    @property
    def unserved(self) -> bool:
        return not self.workers


def queues_overview() -> list[QueueState]:
    """Every queue a tool names or a step waits on, with its depth and its live workers."""
    counts = {
        row["queue"]: row
        for row in RemoteStep.objects.filter(status__in=_OPEN)
        .values("queue")
        .annotate(
            pending=Count("id", filter=Q(status=RS.PENDING)),
            running=Count("id", filter=Q(status=RS.RUNNING)),
        )
    }
    tools: dict[str, list[str]] = {}
    for name, queue in Tool.objects.exclude(queue="").values_list("name", "queue"):
        tools.setdefault(queue, []).append(name)
    since = timezone.now() - beat_window()
    beats = list(WorkerBeat.objects.filter(seen_at__gte=since).values_list("worker_id", "queues"))
    out = []
    for name in sorted(set(counts) | set(tools)):
        row: dict[str, Any] = dict(counts.get(name, {}))
        workers = [w for w, qs in beats if name in qs or ANY_QUEUE in qs]
        out.append(
            QueueState(
                name=name,
                pending=int(row.get("pending", 0)),
                running=int(row.get("running", 0)),
                workers=workers,
                tools=sorted(tools.get(name, [])),
            )
        )
    return out


def step_pool_state(step_ids: list[int]) -> dict[int, dict[str, Any]]:
    """For each step executed through a queue: its queue, status, worker, and what it waits for."""
    rows = list(
        RemoteStep.objects.filter(step_id__in=step_ids).values(
            "step_id", "queue", "status", "worker_id"
        )
    )
    if not rows:
        return {}
    since = timezone.now() - beat_window()
    beats = list(WorkerBeat.objects.filter(seen_at__gte=since).values_list("worker_id", "queues"))
    out = {}
    for row in rows:
        queue = row["queue"]
        waiting = ""
        if row["status"] == RS.PENDING:
            waiting = f"waiting for a worker on queue {queue}"
            if not any(queue in qs or ANY_QUEUE in qs for _, qs in beats):
                waiting += " (no live worker serves it)"
        out[row["step_id"]] = {**row, "waiting": waiting}
    return out


def pool_wait_text(step: Any) -> str:
    """What the page and the API say of a step a pool executes ("" for other steps).

    Reads the ``pool_*`` annotations of ``runs.selectors.with_lock_waits``.
    """
    queue, status = getattr(step, "pool_queue", None), getattr(step, "pool_status", None)
    if not queue:
        return ""
    if status == RS.PENDING:
        text = f"waiting for a worker on queue {queue}"
        return text if live_workers(queue) else text + " (no live worker serves it)"
    worker = getattr(step, "pool_worker", "") or ""
    if status == RS.RUNNING:
        return f"running on worker {worker} (queue {queue})"
    if status == RS.CANCELLED:
        return f"cancelled on queue {queue}"
    return f"ran on worker {worker} (queue {queue})" if worker else f"queue {queue}"
