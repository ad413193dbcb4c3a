"""An admin mixin that writes an AuditEntry for every add, change and delete it performs.

Explicit calls from the admin's save/delete hooks (not signals), inside the
admin's own transaction, so the change and its entry commit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from reviews.audit import config_audit, model_snapshot

# The mixin is always combined with a ModelAdmin; the checker sees that base.
if TYPE_CHECKING:
    _AdminBase = admin.ModelAdmin[Any]
else:
    _AdminBase = object


class AuditedAdminMixin(_AdminBase):
    audit_type: str = ""
    audit_fields: Sequence[str] = ()

    def audit_id(self, obj: Model) -> str:
        return str(obj.pk)

    def audit_snapshot(self, obj: Model) -> dict[str, Any]:
        return model_snapshot(obj, self.audit_fields)

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        before = None
        if change:
            stored = type(obj)._default_manager.filter(pk=obj.pk).first()
            before = self.audit_snapshot(stored) if stored is not None else None
        super().save_model(request, obj, form, change)
        config_audit(
            actor=request.user,  # type: ignore[arg-type]
            object_type=self.audit_type,
            object_id=self.audit_id(obj),
            before=before,
            after=self.audit_snapshot(obj),
        )

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        before, object_id = self.audit_snapshot(obj), self.audit_id(obj)
        super().delete_model(request, obj)
        config_audit(
            actor=request.user,  # type: ignore[arg-type]
            object_type=self.audit_type,
            object_id=object_id,
            before=before,
            after=None,
        )

    @transaction.atomic
    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        rows = [(self.audit_id(o), self.audit_snapshot(o)) for o in queryset]
        super().delete_queryset(request, queryset)
        for object_id, before in rows:
            config_audit(
                actor=request.user,  # type: ignore[arg-type]
                object_type=self.audit_type,
                object_id=object_id,
                before=before,
                after=None,
            )
