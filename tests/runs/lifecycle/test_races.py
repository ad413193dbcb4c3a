"""Real concurrent transactions on PostgreSQL: claims and cancels racing for one run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from runs.lifecycle.cancel import run_cancel
from runs.lifecycle.claim import run_claim
from runs.models import Run, RunStatus, Task, TranscriptEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Start every call at the same instant in its own thread (own connection); return results."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(5)
            results[i] = call()
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def queued_run() -> Run:
    return Run.objects.create(task=Task.objects.create(title="race"))


@pytest.mark.parametrize("workers", [2, 4])
def test_of_workers_racing_for_a_queued_run_exactly_one_wins(workers: int) -> None:
    run = queued_run()
    won = race(*[lambda i=i: run_claim(run_id=run.pk, worker_id=f"w{i}") for i in range(workers)])
    assert not [t for t in won if isinstance(t, Exception)], won
    assert sum(token is not None for token in won) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.EXECUTING
    assert run.lease_owner == next(t for t in won if t is not None)
    assert TranscriptEvent.objects.filter(run=run, kind="run.status").count() == 1


def test_a_cancel_racing_a_claim_leaves_one_consistent_outcome(operator: User) -> None:
    run = queued_run()
    claimed, cancelled = race(
        lambda: run_claim(run_id=run.pk, worker_id="w1"),
        lambda: run_cancel(run_id=run.pk, user=operator),
    )
    run.refresh_from_db()
    assert not isinstance(claimed, Exception), claimed
    assert not isinstance(cancelled, Exception), cancelled  # neither order is an error
    if isinstance(claimed, str):
        # The worker got it first: the cancel became a request the executor will honour.
        assert run.status == RunStatus.EXECUTING
        assert run.cancel_requested_at is not None
    else:
        assert run.status == RunStatus.CANCELLED
    seqs = list(TranscriptEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
