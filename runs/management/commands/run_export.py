"""``manage.py run_export RUN_ID [-o run.json]``: write a run's snapshot document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.lifecycle.snapshots import SnapshotError, snapshot_export, snapshot_json
from runs.models import Run


class Command(BaseCommand):
    help = (
        "Export everything about one run (redacted) as a versioned JSON snapshot "
        "that run_import restores in any plannerweb."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", type=int, help="the run's id")
        parser.add_argument("-o", "--output", help="file to write (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            text = snapshot_json(snapshot_export(run_id=options["run_id"]))
        except Run.DoesNotExist:
            raise CommandError(f"there is no run {options['run_id']}") from None
        except SnapshotError as exc:
            raise CommandError(str(exc)) from exc
        if not options["output"]:
            self.stdout.write(text, ending="")
            return
        try:
            Path(options["output"]).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {options['output']}: {exc}") from exc
        self.stdout.write(f"wrote run {options['run_id']} to {options['output']}")
