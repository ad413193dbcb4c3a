"""manage.py review_timeouts: records SLA notifications, expires overdue review items and names them."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from reviews.models import ReviewItem, ReviewKindSettings
from reviews.policies import kind_settings

pytestmark = pytest.mark.django_db


def set_timeout(kind: str, action: str, sla: int = 10) -> ReviewKindSettings:
    row = kind_settings(kind)
    row.timeout_action, row.sla_minutes = action, sla
    row.save()
    return row


def test_the_review_timeouts_command_expires_overdue_items(held: ReviewItem) -> None:
    set_timeout("plan_approval", "auto_reject", sla=0)
    ReviewItem.objects.filter(pk=held.pk).update(due_at=timezone.now() - timedelta(minutes=1))
    out = io.StringIO()
    call_command("review_timeouts", stdout=out)
    assert f"expired 1 review item(s): {held.pk}" in out.getvalue()
    # Overdue is recorded for notification before the item expires (and opened, whose
    # commit hook never ran inside this test's transaction).
    assert "recorded 2 notification event(s)" in out.getvalue()
    assert set(held.notices.values_list("event", flat=True)) == {"review.opened", "review.overdue"}
