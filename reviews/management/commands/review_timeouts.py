"""``manage.py review_timeouts``: notify about items nearing or past their SLA, then apply timeout actions."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from reviews.notifications import notices_sweep
from runs.lifecycle.reviews import review_expire_overdue


class Command(BaseCommand):
    help = (
        "Record near-SLA and overdue notifications, then expire overdue review items whose "
        "kind has a timeout action (auto-reject / auto-abort)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        notices = notices_sweep()
        self.stdout.write(f"recorded {len(notices)} notification event(s)")
        expired = review_expire_overdue()
        ids = ", ".join(map(str, expired)) or "none"
        self.stdout.write(f"expired {len(expired)} review item(s): {ids}")
