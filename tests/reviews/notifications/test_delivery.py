"""Delivery: signed webhooks, email, retries with backoff, and failures that stay in the log."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from reviews.models import Delivery, DeliveryAttempt, ReviewItem, WebhookEndpoint
from reviews.notifications import delivery_attempt, notice_record
from reviews.notifications.delivery import backoff
from runs.lifecycle.reviews import review_approve
from runs.lifecycle.worker import RunWorker
from runs.models import Run
from tests.reviews.conftest import all_ticks
from tests.reviews.notifications.conftest import SECRET, People, Receiver, deliver_all

pytestmark = pytest.mark.django_db(transaction=True)


def only_delivery() -> Delivery:
    return Delivery.objects.get(endpoint__isnull=False)


def retry_task() -> DBTaskResult:
    return DBTaskResult.objects.get(queue_name="notifications", status="READY")


def test_an_opened_item_reaches_the_webhook_signed_and_subscribed_reviewers_by_email(
    fast_notify: None,
    submit: Callable[..., Run],
    plan_doc: dict,
    global_policy: Callable[..., Any],
    endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    people: People,
) -> None:
    endpoint()
    global_policy("always")
    run = submit(plan_doc)
    item = ReviewItem.objects.get(run=run)
    deliver_all()

    [request] = receiver.received
    expected = hmac.new(SECRET.encode(), request.raw, hashlib.sha256).hexdigest()
    assert request.headers["X-Plannerweb-Signature"] == f"sha256={expected}"
    assert abs(int(request.headers["X-Plannerweb-Timestamp"]) - time.time()) < 3600
    assert request.headers["X-Plannerweb-Event"] == "review.opened"
    assert request.headers["Content-Type"] == "application/json"
    body = request.json
    assert body["event"] == "review.opened"
    assert body["delivery"] == int(request.headers["X-Plannerweb-Delivery"])
    assert body["item"]["id"] == item.pk
    assert body["item"]["kind"] == "plan_approval"
    assert body["item"]["run_id"] == run.pk
    assert body["item"]["url"] == f"https://plannerweb.example.test/reviews/{item.pk}/"

    [email] = mail.outbox
    assert email.to == ["rob@example.test"]
    assert email.subject == f"[plannerweb] Review {item.pk} (Plan approval) opened"
    assert f"https://plannerweb.example.test/reviews/{item.pk}/" in email.body
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_signature_made_with_another_secret_does_not_verify(
    fast_notify: None,
    held: ReviewItem,
    endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
) -> None:
    endpoint(secret="another-secret-0123456789")
    notice_record(item_id=held.pk, event="review.near_sla")
    deliver_all()
    [request] = receiver.received
    ours = hmac.new(SECRET.encode(), request.raw, hashlib.sha256).hexdigest()
    assert request.headers["X-Plannerweb-Signature"] != f"sha256={ours}"


def test_a_failing_receiver_is_retried_after_a_backoff_and_the_log_shows_both_attempts(
    fast_notify: None,
    held: ReviewItem,
    endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
) -> None:
    endpoint()
    receiver.script = [500]
    notice_record(item_id=held.pk, event="review.near_sla")
    deliver_all()
    delivery = only_delivery()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    task = retry_task()
    assert task.run_after == delivery.next_attempt_at
    first = DeliveryAttempt.objects.get(delivery=delivery)
    assert task.run_after - first.created_at >= timedelta(seconds=30)
    assert task.run_after - first.created_at < timedelta(seconds=40)

    deliver_all()  # the retry is not due yet
    assert len(receiver.received) == 1

    DBTaskResult.objects.filter(pk=task.pk).update(run_after=timezone.now())  # time passes
    deliver_all()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    log = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [(a.number, a.status_code, a.ok) for a in log] == [(1, 500, False), (2, 200, True)]
    assert "500" in log[0].error
    assert len(receiver.received) == 2
    assert receiver.received[0].raw == receiver.received[1].raw  # the same signed body


def test_the_backoff_doubles_after_each_failed_attempt(settings: Any) -> None:
    settings.PLANNERWEB_NOTIFY_BACKOFF_SECONDS = 30
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]


def test_attempts_are_bounded_and_the_delivery_ends_failed(
    fast_notify: None,
    held: ReviewItem,
    endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
) -> None:
    endpoint()
    receiver.script = [503, 503, 503, 503]
    notice_record(item_id=held.pk, event="review.near_sla")
    for _ in range(5):
        deliver_all()
        DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now())
    delivery = only_delivery()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert len(receiver.received) == 3
    assert not DBTaskResult.objects.filter(status="READY").exists()


def test_a_duplicate_task_for_the_same_attempt_sends_nothing(
    fast_notify: None,
    held: ReviewItem,
    endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
) -> None:
    endpoint()
    notice_record(item_id=held.pk, event="review.near_sla")
    delivery = only_delivery()
    assert delivery_attempt(delivery_id=delivery.pk, attempt=1) == "delivered"
    assert delivery_attempt(delivery_id=delivery.pk, attempt=1) == "skipped"
    assert delivery_attempt(delivery_id=delivery.pk, attempt=2) == "skipped"
    assert len(receiver.received) == 1


def test_a_dead_receiver_never_fails_or_holds_up_the_run(
    fast_notify: None,
    held: ReviewItem,
    reviewer: User,
    endpoint: Callable[..., WebhookEndpoint],
    blackhole_url: str,
    closed_port_url: str,
) -> None:
    endpoint(name="silent", url=blackhole_url)
    endpoint(name="gone", url=closed_port_url)
    review_approve(item_id=held.pk, user=reviewer, checklist=all_ticks(held))
    # The run's worker takes runs only. The low-confidence deploy opens a step gate on the
    # way (another event for the dead receivers); once approved the run finishes.
    runs_worker = RunWorker(worker_id="runs", batch=True, recovery_seconds=0)
    runs_worker.run()
    gate = ReviewItem.objects.get(run_id=held.run_id, kind="step_gate")
    review_approve(item_id=gate.pk, user=reviewer, checklist=all_ticks(gate))
    RunWorker(worker_id="runs", batch=True, recovery_seconds=0).run()
    assert Run.objects.get(pk=held.run_id).status == "succeeded"
    # The gate's opening, to both endpoints (the plan item opened before they existed).
    assert Delivery.objects.filter(notice__item=gate).count() == 2
    assert not DeliveryAttempt.objects.exists()

    deliver_all()
    errors = dict(DeliveryAttempt.objects.values_list("delivery__endpoint__name", "error"))
    assert sorted(errors) == ["gone", "silent"]
    assert "timed out" in errors["silent"].lower()
    assert "refused" in errors["gone"].lower()
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
    assert Run.objects.get(pk=held.run_id).status == "succeeded"


def test_a_slack_endpoint_gets_a_text_message_with_a_link(
    fast_notify: None,
    held: ReviewItem,
    endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
) -> None:
    endpoint(slack=True)
    ReviewItem.objects.filter(pk=held.pk).update(reason_opened="deploy <prod> & friends")
    notice_record(item_id=held.pk, event="review.overdue")
    deliver_all()
    [request] = receiver.received
    body = request.json
    assert list(body) == ["text"]
    url = f"https://plannerweb.example.test/reviews/{held.pk}/"
    assert body["text"].endswith(f"<{url}|Open review {held.pk}>")
    assert f"Review {held.pk} (Plan approval) is overdue" in body["text"]
    assert "deploy &lt;prod&gt; &amp; friends" in body["text"]
    expected = hmac.new(SECRET.encode(), request.raw, hashlib.sha256).hexdigest()
    assert request.headers["X-Plannerweb-Signature"] == f"sha256={expected}"


def test_an_unreachable_mail_server_is_logged_and_retried(
    fast_notify: None, settings: Any, held: ReviewItem, people: People, closed_port_url: str
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", int(closed_port_url.split(":")[2][:-5])
    notice_record(item_id=held.pk, event="review.near_sla")
    deliver_all()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.delivery.target == "rob@example.test"
    assert not attempt.ok and "refused" in attempt.error.lower()
    assert retry_task().args_kwargs["args"] == [attempt.delivery_id, 2]


def test_a_deactivated_endpoint_gets_nothing_more(
    fast_notify: None,
    held: ReviewItem,
    endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
) -> None:
    hook = endpoint()
    notice_record(item_id=held.pk, event="review.near_sla")
    WebhookEndpoint.objects.filter(pk=hook.pk).update(active=False)
    deliver_all()
    assert receiver.received == []
    assert DeliveryAttempt.objects.get().error == "the endpoint was deactivated"


def test_a_url_that_is_not_http_is_refused_when_sending(
    fast_notify: None, held: ReviewItem, endpoint: Callable[..., WebhookEndpoint]
) -> None:
    endpoint(url="file:///etc/passwd")  # written around the admin's validation
    notice_record(item_id=held.pk, event="review.near_sla")
    deliver_all()
    assert DeliveryAttempt.objects.get().error == "refused: not an http(s) URL"
