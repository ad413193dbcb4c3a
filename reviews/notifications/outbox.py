"""Record review events once and fan them out to endpoints and subscribers (the outbox).

The unique ``(item, event)`` of ``Notice`` makes an event happen once however many
workers sweep at the same moment; the unique ``(notice, endpoint)`` and
``(notice, recipient)`` of ``Delivery`` make each target get it once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from reviews.models import (
    Delivery,
    DeliveryStatus,
    Notice,
    NotifyEvent,
    ReviewItem,
    ReviewStatus,
    ReviewSubscription,
    WebhookEndpoint,
)
from runs.permissions import is_reviewer

if TYPE_CHECKING:
    from django_tasks.base import Task

log = logging.getLogger(__name__)

# The Django Tasks queue deliveries go to: workers of runs never wait on a receiver.
QUEUE = "notifications"
# A pending delivery whose attempt was due this long ago lost its task (a crash mid-attempt,
# a failed enqueue): the sweep queues it again.
STALE_AFTER = timedelta(minutes=10)

# The task body lives in ``reviews.tasks`` (an entry point) and is handed over at app
# loading (``ReviewsConfig.ready``), so this package does not import its caller.
_tasks: dict[str, Task[Any, Any]] = {}


def use_tasks(*, deliver: Task[Any, Any]) -> None:
    """Name the Django Task that makes one delivery attempt (called once at app loading)."""
    _tasks["deliver"] = deliver


def enqueue_attempt(delivery_id: int, attempt: int, *, run_after: datetime | None = None) -> None:
    """Queue attempt number ``attempt`` of a delivery; a lost enqueue is only logged."""
    task = _tasks["deliver"]
    try:
        (task.using(run_after=run_after) if run_after else task).enqueue(delivery_id, attempt)
    except Exception:
        log.exception("could not queue attempt %s of delivery %s", attempt, delivery_id)


def _wants(target: WebhookEndpoint | ReviewSubscription, event: str, kind: str) -> bool:
    """Empty lists mean everything."""
    return (not target.events or event in target.events) and (
        not target.kinds or kind in target.kinds
    )


def _targets(item: ReviewItem, event: str) -> Iterable[Delivery]:
    for endpoint in WebhookEndpoint.objects.filter(active=True):
        if _wants(endpoint, event, item.kind):
            yield Delivery(endpoint=endpoint, target=endpoint.url_hint)
    subscriptions = (
        ReviewSubscription.objects.filter(active=True, user__is_active=True)
        .exclude(user__email="")
        .select_related("user")
    )
    for sub in subscriptions:
        # Someone who lost the reviewer role since subscribing hears nothing more.
        if _wants(sub, event, item.kind) and is_reviewer(sub.user):
            yield Delivery(recipient=sub.user, target=sub.user.email)


@transaction.atomic
def notice_record(*, item_id: int, event: str) -> Notice | None:
    """Record ``event`` of the item and queue its deliveries; None when it was recorded before."""
    item = ReviewItem.objects.get(pk=item_id)
    try:
        with transaction.atomic():
            notice = Notice.objects.create(item=item, event=event)
    except IntegrityError:
        return None  # another worker (or an earlier sweep) recorded it
    now = timezone.now()
    deliveries = list(_targets(item, event))
    for delivery in deliveries:
        delivery.notice, delivery.next_attempt_at = notice, now
    Delivery.objects.bulk_create(deliveries)
    ids = [d.pk for d in deliveries]
    if ids:
        transaction.on_commit(lambda: _enqueue_first(ids), robust=True)
    return notice


def _enqueue_first(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        enqueue_attempt(delivery_id, 1)


def _record_quietly(item_id: int, event: str) -> Notice | None:
    try:
        return notice_record(item_id=item_id, event=event)
    except Exception:  # notifications never fail what triggered them
        log.exception("could not record %s of review item %s", event, item_id)
        return None


def notify_opened(item: ReviewItem) -> None:
    """Once the caller's transaction commits, record that ``item`` opened and send it out."""
    item_id = item.pk
    transaction.on_commit(lambda: _record_quietly(item_id, NotifyEvent.OPENED), robust=True)


def near_moment(created_at: datetime, due_at: datetime) -> datetime:
    """When an item starts to "near its SLA" (``PLANNERWEB_NOTIFY_NEAR_SLA_*``)."""
    minutes = settings.PLANNERWEB_NOTIFY_NEAR_SLA_MINUTES
    if minutes > 0:
        return due_at - timedelta(minutes=minutes)
    return created_at + (due_at - created_at) * settings.PLANNERWEB_NOTIFY_NEAR_SLA_PERCENT / 100


def due_event(created_at: datetime, due_at: datetime, now: datetime) -> str | None:
    """The SLA event an open item has reached at ``now``: overdue, near its SLA, or none."""
    if now > due_at:
        return NotifyEvent.OVERDUE
    if now >= near_moment(created_at, due_at):
        return NotifyEvent.NEAR_SLA
    return None


def notices_sweep(*, now: datetime | None = None) -> list[tuple[int, str]]:
    """Record the events open items have reached (opened, near SLA, overdue); the new ones.

    Run periodically by every worker (``RunWorker.recover_due``) before overdue items
    expire. An item already overdue when first seen gets no "near SLA". "Opened" is
    recorded here too when the commit hook that should have done it was lost (a crash
    right after the item's commit), and deliveries whose task was lost are queued again.
    """
    now = now or timezone.now()
    deliveries_requeue_stale(now=now)
    items = list(
        ReviewItem.objects.filter(status=ReviewStatus.OPEN).values_list(
            "pk", "created_at", "due_at"
        )
    )
    seen = set(
        Notice.objects.filter(item_id__in=[pk for pk, _, _ in items]).values_list(
            "item_id", "event"
        )
    )
    recorded: list[tuple[int, str]] = []
    for pk, created_at, due_at in items:
        wanted = [NotifyEvent.OPENED.value]
        if due_at is not None and (event := due_event(created_at, due_at, now)) is not None:
            wanted.append(event)
        if (pk, NotifyEvent.OVERDUE) in seen:
            continue
        for event in wanted:
            if (pk, event) not in seen and _record_quietly(pk, event) is not None:
                recorded.append((pk, event))
    return recorded


def deliveries_requeue_stale(*, now: datetime | None = None) -> list[int]:
    """Queue again the pending deliveries whose task was lost; the ids.

    The compare-and-swap on ``next_attempt_at`` lets one sweeper take each; a task that
    was only late finds its attempt already made and backs off (``delivery_attempt``).
    An attempt lost mid-flight counts: the bound on attempts holds.
    """
    now = now or timezone.now()
    stale = Delivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lt=now - STALE_AFTER
    ).values_list("pk", "attempts", "next_attempt_at")
    requeued = []
    for pk, attempts, due in list(stale):
        rows = Delivery.objects.filter(pk=pk, status=DeliveryStatus.PENDING, next_attempt_at=due)
        if attempts >= settings.PLANNERWEB_NOTIFY_MAX_ATTEMPTS:
            rows.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
            continue
        if rows.update(next_attempt_at=now):
            enqueue_attempt(pk, attempts + 1)
            requeued.append(pk)
    return requeued
