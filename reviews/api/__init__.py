"""The reviews app's API routers, mounted by ``plannerweb/api.py``: the queue and the audit trail."""

from __future__ import annotations

from reviews.api.audit import audit_router
from reviews.api.queue import router

__all__ = ["audit_router", "router"]
