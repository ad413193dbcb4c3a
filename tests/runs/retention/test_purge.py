"""Retention: what is due goes, in batches, leaving tombstones; nothing recent is touched."""

from __future__ import annotations

import json
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from reviews.audit import audit_verify
from reviews.models import AuditEntry, ReviewItem
from runs.lifecycle.retention import RetentionError, retain_days_check, retention_purge
from runs.lifecycle.worker import RunWorker
from runs.models import ModelAnswer, Run, Step, Task, Tombstone, TranscriptEvent

Aged = Callable[..., Run]


def _state(run: Run) -> tuple[int, int, list[Any]]:
    events = TranscriptEvent.objects.filter(run=run)
    calls = [e.payload["response"] for e in events.filter(kind="planner.call")]
    return events.count(), Step.objects.filter(run=run, result__isnull=False).count(), calls


@pytest.fixture
def retain(settings: Any) -> Any:
    settings.PLANNERWEB_RETAIN_TRANSCRIPT_DAYS = 0
    settings.PLANNERWEB_RETAIN_STEP_RESULTS_DAYS = 0
    settings.PLANNERWEB_RETAIN_MODEL_IO_DAYS = 0
    settings.PLANNERWEB_RETAIN_RUNS_DAYS = 0
    settings.PLANNERWEB_PURGE_BATCH_ROWS = 2  # several batches even for a small run
    return settings


def test_a_dry_run_says_what_would_go_and_deletes_nothing(aged_run: Aged, retain: Any) -> None:
    retain.PLANNERWEB_RETAIN_TRANSCRIPT_DAYS = 30
    retain.PLANNERWEB_RETAIN_RUNS_DAYS = 30
    old = aged_run(40)
    before = _state(old)
    out = StringIO()

    call_command("purge", "--dry-run", stdout=out)

    assert f"run {old.pk}: would purge transcript" in out.getvalue()
    assert f"run {old.pk}: would purge run" in out.getvalue()
    assert _state(old) == before
    assert not Tombstone.objects.exists()
    assert Run.objects.filter(pk=old.pk).exists()


def test_transcripts_results_and_model_io_past_their_days_are_purged_with_tombstones(
    aged_run: Aged, retain: Any, operator: User
) -> None:
    retain.PLANNERWEB_RETAIN_STEP_RESULTS_DAYS = 30
    retain.PLANNERWEB_RETAIN_MODEL_IO_DAYS = 10
    retain.PLANNERWEB_RETAIN_TRANSCRIPT_DAYS = 60
    old, middle, recent = aged_run(90), aged_run(20), aged_run(1)
    recent_before = _state(recent)

    report = retention_purge()

    assert _state(old) == (0, 0, [])  # transcript gone (model io with it), results emptied
    assert _state(middle)[1:] == (2, [""])  # only model io thinned: 20 days < 30
    assert _state(recent) == recent_before
    # The recorded provider answers go with the model io (or the whole transcript).
    answers = ModelAnswer.objects.values_list("run_id", flat=True)
    assert list(answers) == [recent.pk]
    assert {(p.run_id, p.what) for p in report.items} == {
        (old.pk, "transcript"),
        (old.pk, "step_results"),
        (middle.pk, "llm_calls"),
    }
    assert Tombstone.objects.get(run_id=old.pk, what="transcript").rule == (
        "PLANNERWEB_RETAIN_TRANSCRIPT_DAYS=60"
    )
    assert audit_verify() == []
    assert retention_purge().items == []  # nothing twice

    client = Client()
    client.force_login(operator)
    page = client.get(f"/runs/{old.pk}/")
    assert page.status_code == 200
    assert 'data-tombstone="transcript"' in page.content.decode()
    assert "Transcript purged on" in page.content.decode()


def test_a_whole_run_past_its_days_goes_and_its_page_says_so(
    aged_run: Aged, retain: Any, operator: User
) -> None:
    retain.PLANNERWEB_RETAIN_RUNS_DAYS = 30
    old, recent = aged_run(31), aged_run(29)
    ReviewItem.objects.create(kind="plan_approval", status="approved", run=old)
    audit_before = AuditEntry.objects.filter(object_id=str(old.pk)).count()

    retention_purge()

    assert not Run.objects.filter(pk=old.pk).exists()
    assert not Task.objects.filter(pk=old.task_id).exists()
    assert not ReviewItem.objects.filter(run_id=old.pk).exists()
    assert Run.objects.filter(pk=recent.pk).exists()
    # The chain keeps every entry, one more for the purge, and still verifies.
    assert AuditEntry.objects.filter(object_id=str(old.pk)).count() == audit_before + 1
    assert audit_verify() == []
    client = Client()
    client.force_login(operator)
    page = client.get(f"/runs/{old.pk}/")
    assert page.status_code == 410
    assert "This run was purged on" in page.content.decode()
    assert client.get(f"/runs/{recent.pk}/").status_code == 200


def test_a_tasks_own_retention_wins_over_the_setting(aged_run: Aged, retain: Any) -> None:
    retain.PLANNERWEB_RETAIN_RUNS_DAYS = 30
    short = aged_run(10, retain_days=5)
    long = aged_run(40, retain_days=100)

    retention_purge()

    assert not Run.objects.filter(pk=short.pk).exists()
    assert Run.objects.filter(pk=long.pk).exists()
    assert Tombstone.objects.get(run_id=short.pk).rule == "task retention 5 days"


def test_a_run_waiting_on_an_open_review_item_is_kept(aged_run: Aged, retain: Any) -> None:
    retain.PLANNERWEB_RETAIN_RUNS_DAYS = 30
    old = aged_run(40)
    ReviewItem.objects.create(kind="escalation", run=old)

    assert retention_purge().items == []
    assert Run.objects.filter(pk=old.pk).exists()


def test_a_tasks_retention_must_be_within_the_admins_bounds(settings: Any) -> None:
    settings.PLANNERWEB_RETAIN_RUNS_MIN_DAYS = 7
    settings.PLANNERWEB_RETAIN_RUNS_MAX_DAYS = 90

    assert retain_days_check(30) == 30
    assert retain_days_check(None) is None
    with pytest.raises(RetentionError, match="between 7 and 90"):
        retain_days_check(3)
    with pytest.raises(RetentionError):
        retain_days_check(365)


def test_the_worker_applies_the_rules_at_its_interval(aged_run: Aged, retain: Any) -> None:
    retain.PLANNERWEB_RETAIN_RUNS_DAYS = 30
    retain.PLANNERWEB_PURGE_INTERVAL_SECONDS = 3600
    old = aged_run(40)
    worker = RunWorker(worker_id="sweeper", recovery_seconds=0)

    worker.recover_due()  # its first sweep is an interval after it started
    assert Run.objects.filter(pk=old.pk).exists()
    worker._next_purge = 0.0
    worker.recover_due()
    assert not Run.objects.filter(pk=old.pk).exists()


def test_a_run_can_go_to_cold_storage_before_it_is_purged(
    aged_run: Aged, retain: Any, tmp_path: Any, operator: User
) -> None:
    retain.PLANNERWEB_RETAIN_RUNS_DAYS = 30
    retain.PLANNERWEB_PURGE_SNAPSHOTS = True
    retain.STORAGES = {
        **retain.STORAGES,
        "snapshots": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "cold")},
        },
    }
    old = aged_run(40)
    events = TranscriptEvent.objects.filter(run=old).count()

    retention_purge()

    assert not Run.objects.filter(pk=old.pk).exists()
    name = Tombstone.objects.get(run_id=old.pk, what="run").detail["snapshot"]
    kept = json.loads((tmp_path / "cold" / name).read_text(encoding="utf-8"))
    assert kept["source"]["run_id"] == old.pk and len(kept["transcript"]) == events
    client = Client()
    client.force_login(operator)
    assert name in client.get(f"/runs/{old.pk}/").content.decode()
