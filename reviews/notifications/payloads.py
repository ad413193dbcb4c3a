"""What a notification says: the webhook's JSON, the Slack-compatible text, the email."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.urls import reverse

from reviews.models import Notice, NotifyEvent, ReviewItem

WORDS = {
    NotifyEvent.OPENED: "opened",
    NotifyEvent.NEAR_SLA: "nears its SLA",
    NotifyEvent.OVERDUE: "is overdue",
}


def item_url(item: ReviewItem) -> str:
    return settings.PLANNERWEB_BASE_URL.rstrip("/") + reverse("reviews:item", args=[item.pk])


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def webhook_payload(notice: Notice, delivery_id: int) -> dict[str, Any]:
    """The JSON body: the event, and the item as it is when sent."""
    item = notice.item
    return {
        "id": notice.pk,
        "delivery": delivery_id,
        "event": notice.event,
        "occurred_at": _when(notice.created_at),
        "item": {
            "id": item.pk,
            "kind": item.kind,
            "status": item.status,
            "cause": item.cause,
            "reason": item.reason_opened,
            "run_id": item.run_id,
            "task": item.run.task.title,
            "plan_version": item.plan.version if item.plan is not None else None,
            "step": item.step.key if item.step is not None else None,
            "required_approvals": item.required_approvals,
            "assignee": item.assignee.get_username() if item.assignee is not None else None,
            "created_at": _when(item.created_at),
            "due_at": _when(item.due_at),
            "url": item_url(item),
        },
    }


def headline(notice: Notice) -> str:
    item = notice.item
    word = WORDS.get(NotifyEvent(notice.event), notice.event)
    return f"Review {item.pk} ({item.get_kind_display()}) {word}"


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notice: Notice) -> dict[str, str]:
    """A body Slack's incoming webhooks (and compatible chat tools) post as a message."""
    item = notice.item
    due = f" Due {item.due_at:%Y-%m-%d %H:%M} UTC." if item.due_at is not None else ""
    message = f"{headline(notice)} for run {item.run_id}: {item.reason_opened or item.cause}.{due}"
    return {"text": f"{_slack_escape(message)} <{item_url(item)}|Open review {item.pk}>"}


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes that are sent and signed."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def email_message(notice: Notice) -> tuple[str, str]:
    """Subject and plain-text body of the email to a subscribed reviewer."""
    item = notice.item
    lines = [
        f"{headline(notice)}.",
        "",
        f"Run {item.run_id}: {item.run.task.title}",
        f"Why: {item.reason_opened or item.cause or '-'}",
        f"Opened: {item.created_at:%Y-%m-%d %H:%M} UTC",
    ]
    if item.due_at is not None:
        lines.append(f"Due: {item.due_at:%Y-%m-%d %H:%M} UTC")
    lines += ["", f"Open it: {item_url(item)}"]
    return f"[plannerweb] {headline(notice)}", "\n".join(lines) + "\n"
