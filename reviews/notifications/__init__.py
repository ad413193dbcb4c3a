"""Tell people outside the page about review items: signed webhooks and email.

1. ``notify_opened`` (called where an item opens) and ``notices_sweep`` (called by
   the workers' periodic sweep, next to the SLA expiry) record an event once per
   item (``Notice``) and fan it out to the active endpoints and subscribed
   reviewers that want it (``Delivery``, once per endpoint or recipient).
2. Each delivery is a Django Task on the ``notifications`` queue (the body lives in
   ``reviews.tasks`` and is handed over at app loading): ``delivery_attempt`` makes
   one attempt, writes it to the log and schedules the next with exponential
   backoff, up to ``PLANNERWEB_NOTIFY_MAX_ATTEMPTS``.

Nothing here raises into the caller's run: recording happens after the caller
commits, delivery happens in another worker, failures land in the delivery log.
"""

from reviews.notifications.delivery import delivery_attempt, sign
from reviews.notifications.outbox import (
    QUEUE,
    notice_record,
    notices_sweep,
    notify_opened,
    use_tasks,
)

__all__ = [
    "QUEUE",
    "delivery_attempt",
    "notice_record",
    "notices_sweep",
    "notify_opened",
    "sign",
    "use_tasks",
]
