"""Workers: deliveries run on their own queue and threads, never on a run's worker."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

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


def test_embedded_workers_serve_every_tool_queue_unless_told_otherwise(settings: Any) -> None:
    workers = EmbeddedWorkers(threads=1, notify_threads=1)
    assert workers.pool is not None and workers.pool.queues == ["*"]
    settings.PLANNERWEB_EMBEDDED_POOL_QUEUES = []
    assert EmbeddedWorkers(threads=1, notify_threads=1).pool is None


def test_db_worker_queue_serves_tool_queues_and_adds_runs_only_when_named(
    monkeypatch: Any,
) -> None:
    seen: dict[str, Any] = {}

    def capture(self: RunWorker) -> None:
        seen["queues"], seen["pools"] = self.queue_names, self.pool_queues

    def pools_only(self: db_worker.Command, queues: list[str], worker_id: str | None) -> None:
        seen["pools_only"] = queues

    monkeypatch.setattr(RunWorker, "run", capture)
    monkeypatch.setattr(RunWorker, "configure_signals", lambda self: None)
    monkeypatch.setattr(db_worker, "tune_gc_for_service", lambda: None)
    monkeypatch.setattr(db_worker.Command, "_serve_pools", pools_only)
    call_command("db_worker", "--queue", "default,sql")
    assert (seen["queues"], seen["pools"]) == (["default"], ["sql"])
    call_command("db_worker", "--queue", "sql,email")
    assert seen["pools_only"] == ["sql", "email"]


def test_db_worker_refuses_a_queue_that_is_not_a_name() -> None:
    with pytest.raises(CommandError, match="not a queue name: SQL;drop"):
        call_command("db_worker", "--queue", "SQL;drop")
    with pytest.raises(CommandError, match="not a queue name"):
        call_command("db_worker", "--queue", ",")
