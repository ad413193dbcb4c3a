"""What a notification says: the webhook JSON, the Slack text, the email."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reviews.models import Notice, ReviewItem
from reviews.notifications.payloads import (
    body_bytes,
    email_message,
    slack_payload,
    webhook_payload,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def notice(held: ReviewItem, settings: Any) -> Notice:
    settings.PLANNERWEB_BASE_URL = "https://pw.example.test/"
    return Notice.objects.create(item=held, event="review.near_sla")


def test_the_webhook_body_names_the_event_and_the_item(notice: Notice, held: ReviewItem) -> None:
    body = webhook_payload(notice, 7)
    assert (body["id"], body["delivery"], body["event"]) == (notice.pk, 7, "review.near_sla")
    item = body["item"]
    assert item["id"] == held.pk and item["kind"] == "plan_approval"
    assert item["status"] == "open" and item["plan_version"] == 1 and item["step"] is None
    assert item["task"] == "task" and item["required_approvals"] == 1
    assert item["url"] == f"https://pw.example.test/reviews/{held.pk}/"
    assert held.due_at is not None and item["due_at"] == held.due_at.isoformat()
    assert json.loads(body_bytes(body)) == body


def test_the_slack_body_is_one_escaped_text_with_a_link(notice: Notice, held: ReviewItem) -> None:
    ReviewItem.objects.filter(pk=held.pk).update(reason_opened="a <b> & c")
    notice.item.refresh_from_db()
    text = slack_payload(notice)["text"]
    assert text.startswith(f"Review {held.pk} (Plan approval) nears its SLA for run {held.run_id}")
    assert "a &lt;b&gt; &amp; c." in text
    assert text.endswith(f"<https://pw.example.test/reviews/{held.pk}/|Open review {held.pk}>")


def test_the_email_says_what_and_links_to_the_item(notice: Notice, held: ReviewItem) -> None:
    subject, body = email_message(notice)
    assert subject == f"[plannerweb] Review {held.pk} (Plan approval) nears its SLA"
    assert f"Run {held.run_id}: task" in body
    assert f"Open it: https://pw.example.test/reviews/{held.pk}/" in body
    assert "Due: " in body
