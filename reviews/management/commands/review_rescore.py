"""``manage.py review_rescore``: rescore the items' stored risk against today's threshold.

The admin does this when the global approval policy changes; run it after changing
``PLANNERWEB_GATE_CONFIDENCE`` while no global policy row exists.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from reviews.policies import global_policy, items_rescore


class Command(BaseCommand):
    help = "Rescore every review item's stored risk against the current low-confidence threshold."

    def handle(self, *args: Any, **options: Any) -> None:
        rescored = items_rescore()
        threshold = global_policy().threshold
        self.stdout.write(
            f"Checked {rescored.checked} review item(s) against the threshold {threshold:g}; "
            f"{rescored.changed} changed score."
        )
