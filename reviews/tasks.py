"""Background tasks of the review queue (the Django Tasks API): ids in, one service call.

Enqueued by ``reviews.notifications`` after the caller commits, on the
``notifications`` queue, so workers of runs never wait on a slow receiver.
"""

from __future__ import annotations

from django_tasks import task

from reviews.notifications import QUEUE, delivery_attempt


@task(queue_name=QUEUE)
def deliver_notification(delivery_id: int, attempt: int) -> str:
    """Make one attempt of a webhook or email delivery (a duplicate backs off)."""
    return delivery_attempt(delivery_id=delivery_id, attempt=attempt)
