"""``manage.py audit_verify``: recompute the audit hash chain; non-zero exit on the first break."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reviews.audit import audit_verify
from reviews.models import AuditEntry


class Command(BaseCommand):
    help = "Verify the audit log's hash chain; exits non-zero and names the first broken entry."

    def handle(self, *args: Any, **options: Any) -> None:
        problems = audit_verify()
        if problems:
            for problem in problems[1:]:
                self.stderr.write(problem.message)
            raise CommandError(
                f"audit chain broken at entry #{problems[0].seq}: {problems[0].message} "
                f"({len(problems)} problem{'s' * (len(problems) != 1)})"
            )
        count = AuditEntry.objects.count()
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {count} entries"))
