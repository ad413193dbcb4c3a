"""Importing a snapshot: a read-only archived run with new ids, its source kept, rendered."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from reviews.audit import audit_verify
from reviews.models import AuditEntry
from runs.lifecycle.cancel import run_cancel
from runs.lifecycle.errors import RunError
from runs.lifecycle.retries import run_retry
from runs.lifecycle.snapshots import SnapshotError, snapshot_export, snapshot_import
from runs.models import Run, RunArchive, Step, Task
from tests.runs.processes import REPO, child_env


def _data(document: Any) -> bytes:
    return json.dumps(document).encode()


def test_an_import_restores_the_run_with_new_ids_and_its_source(
    finished_run: Run, admin_user: User
) -> None:
    exported = snapshot_export(run_id=finished_run.pk)

    run = snapshot_import(data=_data(exported), user=admin_user)

    assert run.pk != finished_run.pk
    assert run.status == "failed"
    archive = RunArchive.objects.get(run=run)
    assert (archive.source_run_id, archive.submitted_by) == (finished_run.pk, "olivia")
    assert run.task.submitted_by is None
    steps = {s.key: s for s in Step.objects.filter(run=run)}
    assert {k: s.status for k, s in steps.items()} == {"backup": "succeeded", "notify": "failed"}
    assert run.current_plan is not None and run.current_plan.version == 1
    # Transcript ids point at the imported rows, not at the source's.
    step_ids = {e.payload["step_id"] for e in run.events.filter(kind="step.status")}
    assert step_ids == {s.pk for s in steps.values()}
    assert AuditEntry.objects.filter(run_id=run.pk, action="run.imported").exists()
    assert audit_verify() == []
    # Exported again, the run names where it came from.
    again = snapshot_export(run_id=run.pk)
    assert again["provenance"][0]["run_id"] == finished_run.pk
    assert [e["kind"] for e in again["transcript"]] == [e["kind"] for e in exported["transcript"]]


def test_an_archived_run_is_read_only(finished_run: Run, operator: User) -> None:
    run = snapshot_import(data=_data(snapshot_export(run_id=finished_run.pk)), user=None)

    with pytest.raises(RunError, match="read-only"):
        run_retry(run_id=run.pk, step="notify", user=operator)
    with pytest.raises(RunError, match="read-only"):
        run_cancel(run_id=run.pk, user=operator, rollback=True)


def test_the_archived_run_page_shows_graph_steps_transcript_and_provenance(
    finished_run: Run, operator: User
) -> None:
    run = snapshot_import(data=_data(snapshot_export(run_id=finished_run.pk)), user=None)
    client = Client()
    client.force_login(operator)

    page = client.get(f"/runs/{run.pk}/").content.decode()

    assert "data-archive" in page
    assert f"run {finished_run.pk} of" in page
    assert "backup" in page and "notify" in page
    assert "run.created" in page or "Run created" in page
    assert "data-retry-form" not in page
    assert "data-cancel-form" not in page


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.update(format="other"), "not a valid run snapshot"),
        (lambda d: d["run"].update(status="executing"), "only a finished run"),
        (lambda d: d["run"].update(current_plan_version=7), "plan version is referred"),
        (lambda d: d["transcript"].append(dict(d["transcript"][0])), "share a sequence"),
        (lambda d: d.update(format_version=2), "newer than this plannerweb reads"),
        (lambda d: d["plans"][0]["steps"][0].update(status="exploded"), "status"),
        (lambda d: d["transcript"][-1].update(created_at="yesterday"), "ISO 8601"),
    ],
)
def test_a_broken_snapshot_is_refused_and_writes_nothing(
    finished_run: Run, change: Any, problem: str
) -> None:
    document = snapshot_export(run_id=finished_run.pk)
    change(document)
    before = (Run.objects.count(), Task.objects.count(), AuditEntry.objects.count())

    with pytest.raises(SnapshotError, match=problem):
        snapshot_import(data=_data(document), user=None)

    assert (Run.objects.count(), Task.objects.count(), AuditEntry.objects.count()) == before


def test_run_import_refuses_a_file_that_is_not_json(db: None, tmp_path: Path) -> None:
    bad = tmp_path / "run.json"
    bad.write_text("{not json", encoding="utf-8")

    with pytest.raises(CommandError, match="nothing imported: a snapshot is a JSON document"):
        call_command("run_import", str(bad), stdout=StringIO())
    assert not Run.objects.exists()


def test_a_snapshot_imports_into_a_fresh_database_and_exports_the_same_run(
    finished_run: Run, tmp_path: Path
) -> None:
    snapshot = tmp_path / "run.json"
    call_command("run_export", str(finished_run.pk), "-o", str(snapshot), stdout=StringIO())
    env = child_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}")

    def manage(*argv: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    manage("migrate", "--noinput", "-v", "0")
    imported = manage("run_import", str(snapshot))
    run_id = imported.split("imported as run ")[1].split()[0]
    again = json.loads(manage("run_export", run_id))

    original = json.loads(snapshot.read_text(encoding="utf-8"))
    assert again["provenance"][0]["run_id"] == finished_run.pk
    assert again["task"] == original["task"] | {"submitted_by": None}
    assert [(p["version"], [s["key"] for s in p["steps"]]) for p in again["plans"]] == [
        (p["version"], [s["key"] for s in p["steps"]]) for p in original["plans"]
    ]
    assert len(again["transcript"]) == len(original["transcript"])


@pytest.mark.parametrize("value", [257, 100_000])
def test_run_import_refuses_a_max_parallel_outside_the_apis_range(
    finished_run: Run, tmp_path: Path, value: int
) -> None:
    document = snapshot_export(run_id=finished_run.pk)
    document["run"]["max_parallel"] = value
    path = tmp_path / "run.json"
    path.write_bytes(_data(document))
    before = (Run.objects.count(), Task.objects.count(), AuditEntry.objects.count())

    with pytest.raises(CommandError) as caught:
        call_command("run_import", str(path), stdout=StringIO())

    assert str(caught.value) == (
        f"{path}: nothing imported: run.max_parallel must be between 1 and 256, not {value}"
    )
    assert (Run.objects.count(), Task.objects.count(), AuditEntry.objects.count()) == before


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 100_000, "nested more than 110 levels deep"),
        ('{"format": ' + "9" * 5000 + "}", "an integer has more than 100 digits"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_run_import_refuses_a_document_beyond_the_limits_with_its_sentence(
    db: None, tmp_path: Path, text: str | bytes, problem: str
) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())

    with pytest.raises(
        CommandError, match=f"nothing imported: a snapshot is a JSON document: .*{problem}"
    ):
        call_command("run_import", str(path), stdout=StringIO())
    assert not Run.objects.exists() and not Task.objects.exists()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a\x00b", "transcript[0].payload.note: text may not contain NUL characters"),
        ("a\ud800b", "transcript[0].payload.note: text may not contain lone surrogates"),
        (_nested(120), "nested more than 110 levels deep"),
    ],
)
def test_a_snapshot_holding_what_no_database_stores_is_refused_and_writes_nothing(
    finished_run: Run, value: Any, problem: str
) -> None:
    document = snapshot_export(run_id=finished_run.pk)
    document["transcript"][0]["payload"]["note"] = value
    before = (Run.objects.count(), Task.objects.count(), AuditEntry.objects.count())

    with pytest.raises(SnapshotError, match=re.escape(problem)):
        snapshot_import(data=json.dumps(document).encode(), user=None)

    assert (Run.objects.count(), Task.objects.count(), AuditEntry.objects.count()) == before


def test_a_stored_value_as_deep_as_the_product_stores_imports_with_the_snapshots_own_levels(
    finished_run: Run,
) -> None:
    document = snapshot_export(run_id=finished_run.pk)
    deepest = _nested(99)  # the payload's own level makes it 100, the most a value may nest
    document["transcript"][0]["payload"]["note"] = deepest

    run = snapshot_import(data=_data(document), user=None)

    first = run.events.order_by("seq").first()
    assert first is not None and first.payload["note"] == deepest
