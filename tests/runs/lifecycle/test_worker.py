"""Workers: deliveries run on their own queue and threads, never on a run's worker."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command

from runs.lifecycle.worker import EmbeddedWorkers, RunWorker
from runs.management.commands import db_worker


def test_embedded_workers_keep_notification_deliveries_on_threads_of_their_own() -> None:
    workers = EmbeddedWorkers(threads=3, notify_threads=1)
    queues = [w.queue_names for w in workers.workers]
    assert queues == [["default"], ["default"], ["default"], ["notifications"]]
    assert len(workers.threads) == 4


def test_a_plain_db_worker_serves_runs_and_notifications(monkeypatch: Any) -> None:
    seen: dict[str, Any] = {}

    def capture(self: RunWorker) -> None:
        seen["queues"] = self.queue_names

    monkeypatch.setattr(RunWorker, "run", capture)
    monkeypatch.setattr(RunWorker, "configure_signals", lambda self: None)
    monkeypatch.setattr(db_worker, "tune_gc_for_service", lambda: None)
    call_command("db_worker")
    assert seen["queues"] == ["default", "notifications"]
    call_command("db_worker", "--queue-name", "default")
    assert seen["queues"] == ["default"]
