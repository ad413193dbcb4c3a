"""``manage.py audit_verify``: recompute the audit hash chain; non-zero exit on the first break."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reviews.audit import audit_check


class Command(BaseCommand):
    help = "Verify the audit log's hash chain; exits non-zero and names the first broken entry."

    def handle(self, *args: Any, **options: Any) -> None:
        check = audit_check()
        if check.problems:
            for problem in check.problems[1:]:
                self.stderr.write(problem.message)
            raise CommandError(f"audit {check.line()}")
        self.stdout.write(self.style.SUCCESS(f"audit {check.line()}"))
