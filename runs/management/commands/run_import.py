"""``manage.py run_import run.json [--user NAME]``: restore a snapshot as an archived run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.lifecycle.snapshots import SnapshotError, snapshot_import


class Command(BaseCommand):
    help = (
        "Import a run snapshot (from run_export or GET /api/runs/{id}/export) as a "
        "read-only archived run with new ids; writes nothing if the file has a problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path of the snapshot, or - for stdin")
        parser.add_argument("--user", help="the username the audit trail names as importer")

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        user = None
        if options["user"]:
            user = User.objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"there is no user {options['user']!r}")
        try:
            data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        try:
            run = snapshot_import(data=data, user=user)
        except SnapshotError as exc:
            raise CommandError(f"{path}: nothing imported: {exc}") from exc
        self.stdout.write(f"imported as run {run.pk} (archived, read-only)")
