"""One delivery attempt: POST the signed webhook or send the email, log it, schedule the next.

The attempt is claimed by compare-and-swap on the delivery's attempt count, so a
duplicate task (a worker crash, a re-queue) never sends the same attempt twice.
Failures are written to the delivery log (``DeliveryAttempt``) and never raised.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from http.client import HTTPException
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from reviews.models import Delivery, DeliveryAttempt, DeliveryStatus
from reviews.notifications.outbox import enqueue_attempt
from reviews.notifications.payloads import (
    body_bytes,
    email_message,
    slack_payload,
    webhook_payload,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Plannerweb-Signature"
TIMESTAMP_HEADER = "X-Plannerweb-Timestamp"
EVENT_HEADER = "X-Plannerweb-Event"
DELIVERY_HEADER = "X-Plannerweb-Delivery"
_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str = ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not an instruction: the body goes only where it was configured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def sign(body: bytes, secret: str) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    if not url.lower().startswith(("http://", "https://")):
        return Outcome(False, error="refused: not an http(s) URL")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    timeout = settings.PLANNERWEB_NOTIFY_TIMEOUT_SECONDS
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(64 * 1024)
            return Outcome(True, response.status)
    except urllib.error.HTTPError as exc:
        return Outcome(False, exc.code, f"HTTP {exc.code} {exc.reason}")
    except urllib.error.URLError as exc:
        return Outcome(False, error=f"{type(exc.reason).__name__}: {exc.reason}")
    except (OSError, HTTPException, ValueError) as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}")


def _send_webhook(delivery: Delivery) -> Outcome:
    endpoint = delivery.endpoint
    if endpoint is None:
        return Outcome(False, error="the endpoint was deleted")
    if not endpoint.active:
        return Outcome(False, error="the endpoint was deactivated")
    notice = delivery.notice
    payload = slack_payload(notice) if endpoint.slack else webhook_payload(notice, delivery.pk)
    body = body_bytes(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "plannerweb-notifications",
        SIGNATURE_HEADER: sign(body, endpoint.secret),
        TIMESTAMP_HEADER: str(int(time.time())),
        EVENT_HEADER: notice.event,
        DELIVERY_HEADER: str(delivery.pk),
    }
    return _post(endpoint.url, body, headers)


def _send_email(delivery: Delivery) -> Outcome:
    user = delivery.recipient
    if user is None or not user.email:
        return Outcome(False, error="the recipient was deleted or has no address")
    subject, text = email_message(delivery.notice)
    try:
        send_mail(subject, text, None, [user.email], fail_silently=False)
    except Exception as exc:  # SMTP, DNS, TLS ...: every failure is the log's, not the run's
        return Outcome(False, error=f"{type(exc).__name__}: {exc}")
    return Outcome(True)


def backoff(attempt: int) -> timedelta:
    """The wait after failed attempt number ``attempt``: the base delay, doubled each time."""
    return timedelta(seconds=settings.PLANNERWEB_NOTIFY_BACKOFF_SECONDS * 2 ** (attempt - 1))


@transaction.atomic
def _record(delivery: Delivery, attempt: int, outcome: Outcome) -> str:
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=attempt,
        status_code=outcome.status_code,
        error=outcome.error[:_ERROR_CHARS],
        ok=outcome.ok,
    )
    now = timezone.now()
    rows = Delivery.objects.filter(pk=delivery.pk)
    if outcome.ok:
        rows.update(status=DeliveryStatus.DELIVERED, delivered_at=now, next_attempt_at=None)
        return DeliveryStatus.DELIVERED
    if attempt >= settings.PLANNERWEB_NOTIFY_MAX_ATTEMPTS:
        rows.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
        log.warning("delivery %s failed after %s attempts: %s", delivery.pk, attempt, outcome)
        return DeliveryStatus.FAILED
    retry_at = now + backoff(attempt)
    rows.update(next_attempt_at=retry_at)
    transaction.on_commit(
        lambda: enqueue_attempt(delivery.pk, attempt + 1, run_after=retry_at), robust=True
    )
    return "retry"


def delivery_attempt(*, delivery_id: int, attempt: int) -> str:
    """Make attempt number ``attempt`` of a delivery; what became of it.

    1. Claim: move the attempt count from ``attempt - 1`` to ``attempt`` on a pending
       delivery; 0 rows means a duplicate task or a delivery already settled.
    2. Send outside any transaction (bounded by ``PLANNERWEB_NOTIFY_TIMEOUT_SECONDS``).
    3. Log the attempt; on failure queue the next one after ``backoff`` (bounded).
    """
    claimed = Delivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, attempts=attempt - 1
    ).update(attempts=attempt)
    if not claimed:
        return "skipped"
    delivery = Delivery.objects.select_related(
        "endpoint",
        "recipient",
        "notice__item__run__task",
        "notice__item__plan",
        "notice__item__step",
        "notice__item__assignee",
    ).get(pk=delivery_id)
    send = _send_email if delivery.channel == "email" else _send_webhook
    try:
        outcome = send(delivery)
    except Exception as exc:  # a bug in building the message is logged like a failed send
        log.exception("delivery %s raised", delivery_id)
        outcome = Outcome(False, error=f"{type(exc).__name__}: {exc}")
    return _record(delivery, attempt, outcome)
