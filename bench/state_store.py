"""Snapshot and retention figures on a scratch SQLite database: export, import, purge batches.

Builds one finished run with ``--events`` transcript events and ``--steps`` steps, then
prints how long ``snapshot_export`` and ``snapshot_import`` take and the file size, and
how a transcript purge goes in batches of ``PLANNERWEB_PURGE_BATCH_ROWS``: the total time
and the longest single batch (the longest a writer can wait on the purge).

    .venv/bin/python bench/state_store.py
    .venv/bin/python bench/state_store.py --events 100000 --batch 1000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(batch: int) -> None:
    folder = tempfile.mkdtemp(prefix="plannerweb-state-")
    os.environ["PLANNERWEB_VAR_DIR"] = folder
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    os.environ["PLANNERWEB_WORKER"] = "none"
    os.environ["PLANNERWEB_PURGE_BATCH_ROWS"] = str(batch)
    os.environ["PLANNERWEB_RETAIN_TRANSCRIPT_DAYS"] = "30"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "plannerweb.settings"
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def build_run(events: int, steps: int) -> int:
    from django.utils import timezone

    from runs.models import Plan, Run, Step, Task, TranscriptEvent

    now = timezone.now()
    task = Task.objects.create(title="bench: a long run", description="many events")
    run = Run.objects.create(task=task, status="succeeded", finished_at=now - timedelta(days=40))
    plan = Plan.objects.create(run=run, version=1, source="operator", is_valid=True)
    Run.objects.filter(pk=run.pk).update(current_plan=plan)
    Step.objects.bulk_create(
        Step(
            plan=plan,
            run=run,
            key=f"s{i}",
            position=i,
            tool_name="record",
            params={"label": f"s{i}"},
            status="succeeded",
            result={"label": f"s{i}", "path": f"/backups/s{i}.db"},
        )
        for i in range(steps)
    )
    TranscriptEvent.objects.bulk_create(
        (
            TranscriptEvent(
                run=run,
                seq=i + 1,
                role="executor",
                kind="step.status",
                payload={
                    "step_id": 1,
                    "step": f"s{i % steps}",
                    "from_status": "running",
                    "to_status": "succeeded",
                    "reason": "done",
                },
                created_at=now,
            )
            for i in range(events)
        ),
        batch_size=2000,
    )
    return run.pk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    setup_django(args.batch)

    from django.db import transaction

    from runs.lifecycle import retention
    from runs.lifecycle.snapshots import snapshot_export, snapshot_import, snapshot_json

    run_id = build_run(args.events, args.steps)
    started = time.perf_counter()
    text = snapshot_json(snapshot_export(run_id=run_id))
    exported = time.perf_counter() - started
    started = time.perf_counter()
    snapshot_import(data=text.encode(), user=None)
    imported = time.perf_counter() - started

    # Time every batch transaction the purge opens.
    longest = [0.0]
    real_atomic = transaction.atomic

    class Timed:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.args, self.kwargs = args, kwargs

        def __enter__(self) -> None:
            self.inner = real_atomic(*self.args, **self.kwargs)  # type: ignore[call-overload]
            self.start = time.perf_counter()
            self.inner.__enter__()

        def __exit__(self, *exc: object) -> None:
            self.inner.__exit__(*exc)  # type: ignore[arg-type]
            longest[0] = max(longest[0], time.perf_counter() - self.start)

    retention.transaction.atomic = Timed  # type: ignore[assignment]
    started = time.perf_counter()
    report = retention.retention_purge()
    purged = time.perf_counter() - started
    retention.transaction.atomic = real_atomic

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, SQLite, Python {platform.python_version()}"
    )
    print(f"run: {args.events} events, {args.steps} steps")
    print(f"export: {exported * 1000:.0f} ms, {len(text.encode()) / 1e6:.1f} MB of JSON")
    print(f"import: {imported * 1000:.0f} ms")
    rows = report.rows("transcript")
    print(
        f"purge transcript: {rows} rows in {purged * 1000:.0f} ms, batches of {args.batch}, "
        f"longest batch transaction {longest[0] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
