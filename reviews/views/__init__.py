"""Review pages: the queue, an item and its decisions, the audit log and its CSV.

Every view is for reviewers (staff included): anonymous users go to the login
page, everyone else gets 403. Views parse, call a service, and redirect or render.
"""

from reviews.views.audit import audit_csv, audit_log
from reviews.views.items import (
    item_approve,
    item_assign,
    item_claim,
    item_detail,
    item_edit,
    item_preview,
    item_reject,
    item_resolve,
    item_save_approve,
)
from reviews.views.queue import queue

__all__ = [
    "audit_csv",
    "audit_log",
    "item_approve",
    "item_assign",
    "item_claim",
    "item_detail",
    "item_edit",
    "item_preview",
    "item_reject",
    "item_resolve",
    "item_save_approve",
    "queue",
]
