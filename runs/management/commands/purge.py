"""``manage.py purge [--dry-run]``: apply the retention rules now (the worker does it hourly)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from runs.lifecycle.retention import LABELS, RULES, retention_purge


class Command(BaseCommand):
    help = (
        "Purge what the PLANNERWEB_RETAIN_* settings (and tasks' own retention) say is due "
        "from finished runs, in short batches, leaving tombstones; the audit chain stays."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be purged; delete nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = retention_purge(dry_run=options["dry_run"])
        for line in report.lines():
            self.stdout.write(line)
        totals = ", ".join(f"{LABELS[what]}: {report.rows(what)} rows" for what, _ in RULES)
        verb = "would purge" if report.dry_run else "purged"
        self.stdout.write(f"{verb} {len(report.items)} item(s); {totals}")
