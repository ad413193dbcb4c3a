"""Claiming a run for a worker under a fenced lease, and executing it to its next stop."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from runs.execution.engine import RunExecutor
from runs.lifecycle.leases import lease_token, worker_identity
from runs.lifecycle.planning import run_needs_planning, run_plan
from runs.lifecycle.planning_hooks import PlanningHooks
from runs.lifecycle.subplan_links import subplan_after_stop
from runs.lifecycle.supervision import Supervision
from runs.lifecycle.traces import traced_run
from runs.models import Run, RunStatus
from runs.statemachine import (
    RUN_ACTIVE,
    run_transition,
)


def run_claim(*, run_id: int, worker_id: str, lease_seconds: float | None = None) -> str | None:
    """Take a queued run (or one whose lease expired) for this worker.

    Returns the lease token the executor must write under (``Journal.fence``),
    or None when another worker has the run. A compare-and-swap on status and
    lease: of two workers racing, exactly one sees its update change a row. The
    token is new at every claim, so a worker that lost the run and took it back
    later is still told apart from its earlier self.
    """
    lease = lease_seconds or settings.PLANNERWEB_HEARTBEAT_SECONDS * 5
    token = lease_token(worker_id)
    now = timezone.now()
    until = now + timedelta(seconds=lease)
    with transaction.atomic():
        run = Run.objects.filter(pk=run_id).values("status", "lease_expires_at").first()
        if run is None:
            return None
        if run["status"] == RunStatus.QUEUED:
            won = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
                lease_owner=token, lease_expires_at=until
            )
            if not won:
                return None
            run_transition(run_id=run_id, to=RunStatus.EXECUTING, reason=f"claimed by {worker_id}")
            return token
        if run["status"] in RUN_ACTIVE:
            expired = run["lease_expires_at"] is None or run["lease_expires_at"] < now
            if not expired:
                return None
            won = Run.objects.filter(
                pk=run_id, status=run["status"], lease_expires_at=run["lease_expires_at"]
            ).update(lease_owner=token, lease_expires_at=until)
            return token if won else None
        return None


def run_start(*, run_id: int, worker_id: str) -> RunExecutor | str:
    """Plan the run if it needs it, claim it and load it: its executor, ready to execute.

    Returns the run's status instead when there is nothing to execute here (the
    planner escalated it, another worker holds it, or it is no longer active).
    """
    # A planner task's run is planned first (queued → planning → executing, or escalated).
    if (
        run_needs_planning(run_id)
        and run_plan(run_id=run_id, worker_id=worker_id) != RunStatus.EXECUTING
    ):
        return str(Run.objects.filter(pk=run_id).values_list("status", flat=True).get())
    token = run_claim(run_id=run_id, worker_id=worker_id)
    if token is None:
        return str(Run.objects.filter(pk=run_id).values_list("status", flat=True).get())
    executor = RunExecutor(
        run_id, supervision=Supervision(), planning=PlanningHooks(), lease_owner=token
    )
    executor.load()
    if not executor.has_work:
        return executor.status
    return executor


def run_execute(*, run_id: int, worker_id: str | None = None) -> str:
    """Claim and execute a run to its next stop in this thread; returns the run's status.

    When another worker holds the run this backs off at once and returns its status.
    """
    started = run_start(run_id=run_id, worker_id=worker_id or worker_identity())
    if isinstance(started, str):
        subplan_after_stop(run_id=run_id)
        return started
    with traced_run(run_id, phase="execute"):
        status = started.execute_loaded()
    subplan_after_stop(run_id=run_id)  # a child run that stopped: its parent goes on
    return status
