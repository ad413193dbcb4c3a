"""``manage.py review_timeouts``: apply each kind's timeout action to overdue review items."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from runs.lifecycle.reviews import review_expire_overdue


class Command(BaseCommand):
    help = "Expire overdue review items whose kind has a timeout action (auto-reject / auto-abort)."

    def handle(self, *args: Any, **options: Any) -> None:
        expired = review_expire_overdue()
        ids = ", ".join(map(str, expired)) or "none"
        self.stdout.write(f"expired {len(expired)} review item(s): {ids}")
