"""Admin for the review queue: policies and kind settings (audited), items and audit (read-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from reviews import (
    admin_notifications,  # noqa: F401  (registers the notification admins)
    policies,
)
from reviews.admin_audit import AuditedAdminMixin
from reviews.models import ApprovalPolicy, AuditEntry, ReviewItem, ReviewKindSettings
from runs.admin import ReadOnlyAdmin, StaffAdmin


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(AuditedAdminMixin, StaffAdmin):
    audit_type = "approval_policy"
    audit_fields = ("mode", "confidence_threshold", "required_approvals", "tool", "task")
    list_display = ("__str__", "mode", "confidence_threshold", "required_approvals", "updated_at")
    list_filter = ("mode",)
    raw_id_fields = ("task",)

    def audit_id(self, obj: Model) -> str:
        return str(obj)

    # The global row's threshold scores every item's low confidence: a change rescores them.
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if obj.scope == "global":
            policies.items_rescore()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        was_global = obj.scope == "global"
        super().delete_model(request, obj)
        if was_global:
            policies.items_rescore()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        had_global = queryset.filter(tool__isnull=True, task__isnull=True).exists()
        super().delete_queryset(request, queryset)
        if had_global:
            policies.items_rescore()


@admin.register(ReviewKindSettings)
class ReviewKindSettingsAdmin(AuditedAdminMixin, StaffAdmin):
    audit_type = "review_kind_settings"
    audit_fields = ("kind", "sla_minutes", "timeout_action", "checklist")
    list_display = ("kind", "sla_minutes", "timeout_action", "updated_at")

    def audit_id(self, obj: Any) -> str:
        return str(obj.kind)


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "status", "run", "assignee", "decided_by", "created_at", "due_at")
    list_filter = ("kind", "status")
    list_select_related = ("run", "assignee", "decided_by")


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "seq",
        "created_at",
        "actor_name",
        "action",
        "object_type",
        "object_id",
        "reason",
    )
    list_filter = ("action", "object_type")
    search_fields = ("actor_name", "object_id", "reason")
