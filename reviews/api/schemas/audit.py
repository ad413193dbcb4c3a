"""In/Out schemas of the audit trail resource."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema

from reviews.models import AuditEntry
from runs.api.inputs import QueryIn
from runs.api.paging import PageOut


class AuditFiltersIn(QueryIn):
    run: int | None = Field(None, ge=1, le=2**63 - 1, description="Entries about this run.")
    item: int | None = Field(None, ge=1, le=2**63 - 1, description="Entries about this item.")
    actor: str | None = Field(None, max_length=150, description="Username (or `system`).")


class AuditEntryOut(Schema):
    seq: int
    created_at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    run: int | None
    item: int | None
    before: Any
    after: Any
    reason: str
    hash: str
    prev_hash: str

    @staticmethod
    def resolve_actor(entry: AuditEntry) -> str:
        return entry.actor_name

    @staticmethod
    def resolve_run(entry: AuditEntry) -> int | None:
        return entry.run_id

    @staticmethod
    def resolve_item(entry: AuditEntry) -> int | None:
        return entry.item_id


class AuditPageOut(PageOut):
    items: list[AuditEntryOut]
