"""Admin for notifications: webhook endpoints and reviewer subscriptions (audited), the log (read-only).

Secrets are write-only here: lists show their last four characters, the form never
renders the stored one, and a blank secret on change keeps it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Model

from reviews.admin_audit import AuditedAdminMixin
from reviews.audit import model_snapshot
from reviews.models import (
    Delivery,
    DeliveryAttempt,
    NotifyEvent,
    ReviewKind,
    ReviewSubscription,
    WebhookEndpoint,
)
from runs.admin import ReadOnlyAdmin, StaffAdmin
from runs.permissions import is_reviewer


class _EventsAndKindsForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=NotifyEvent.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event.",
    )
    kinds = forms.MultipleChoiceField(
        choices=ReviewKind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every kind of item.",
    )


class WebhookEndpointForm(_EventsAndKindsForm):
    url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        help_text="http:// or https:// only. Receives a POST per event.",
    )
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False),
        help_text="At least 16 characters; signs each body. Never shown again: "
        "leave blank to keep the current one.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("name", "url", "secret", "events", "kinds", "slack", "active")

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        if not url.lower().startswith(("http://", "https://")):
            raise ValidationError("Webhook URLs must start with http:// or https://.")
        return url

    def clean_secret(self) -> str:
        secret: str = self.cleaned_data.get("secret") or ""
        if not secret and self.instance.pk:
            return self.instance.secret
        if len(secret) < 16:
            raise ValidationError("Use a secret of at least 16 characters.")
        return secret


class ReviewSubscriptionForm(_EventsAndKindsForm):
    class Meta:
        model = ReviewSubscription
        fields = ("user", "events", "kinds", "active")

    def clean_user(self) -> Any:
        user = self.cleaned_data["user"]
        if not is_reviewer(user):
            raise ValidationError(f"{user.get_username()} is not a reviewer.")
        if not user.email:
            raise ValidationError(f"{user.get_username()} has no email address.")
        return user


def _shown(values: list[str]) -> str:
    return ", ".join(values) if values else "all"


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AuditedAdminMixin, StaffAdmin):
    form = WebhookEndpointForm
    audit_type = "webhook_endpoint"
    audit_fields = ("name", "events", "kinds", "slack", "active")
    list_display = (
        "name",
        "url_hint",
        "secret_hint",
        "events_shown",
        "kinds_shown",
        "slack",
        "active",
        "updated_at",
    )
    list_filter = ("active", "slack")

    def audit_snapshot(self, obj: Model) -> dict[str, Any]:
        # The audit log is readable by reviewers: no secret, and no URL path (chat webhook
        # URLs carry their token in it).
        assert isinstance(obj, WebhookEndpoint)
        snapshot = model_snapshot(obj, self.audit_fields)
        return {**snapshot, "url": obj.url_hint, "secret": obj.secret_hint}

    @admin.display(description="URL")
    def url_hint(self, obj: WebhookEndpoint) -> str:
        return obj.url_hint

    @admin.display(description="secret")
    def secret_hint(self, obj: WebhookEndpoint) -> str:
        return obj.secret_hint

    @admin.display(description="events")
    def events_shown(self, obj: WebhookEndpoint) -> str:
        return _shown(obj.events)

    @admin.display(description="kinds")
    def kinds_shown(self, obj: WebhookEndpoint) -> str:
        return _shown(obj.kinds)


@admin.register(ReviewSubscription)
class ReviewSubscriptionAdmin(AuditedAdminMixin, StaffAdmin):
    form = ReviewSubscriptionForm
    audit_type = "review_subscription"
    audit_fields = ("user", "events", "kinds", "active")
    list_display = ("user", "email", "events_shown", "kinds_shown", "active", "updated_at")
    list_filter = ("active",)
    list_select_related = ("user",)

    @admin.display(description="email")
    def email(self, obj: ReviewSubscription) -> str:
        return obj.user.email

    @admin.display(description="events")
    def events_shown(self, obj: ReviewSubscription) -> str:
        return _shown(obj.events)

    @admin.display(description="kinds")
    def kinds_shown(self, obj: ReviewSubscription) -> str:
        return _shown(obj.kinds)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "event",
        "item",
        "channel",
        "target",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "notice__event")
    list_select_related = ("notice",)
    search_fields = ("target",)
    exclude = ("endpoint", "recipient")
    readonly_fields = ("notice", "endpoint_name", "target", "status", "attempts")

    @admin.display(description="event")
    def event(self, obj: Delivery) -> str:
        return obj.notice.event

    @admin.display(description="item")
    def item(self, obj: Delivery) -> int:
        return obj.notice.item_id

    @admin.display(description="endpoint")
    def endpoint_name(self, obj: Delivery) -> str:
        return obj.endpoint.name if obj.endpoint is not None else "-"


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "target",
        "event",
        "item",
        "number",
        "ok",
        "status_code",
        "error_shown",
    )
    list_filter = ("ok", "delivery__notice__event")
    list_select_related = ("delivery__notice",)
    search_fields = ("delivery__target", "error")

    @admin.display(description="endpoint or recipient")
    def target(self, obj: DeliveryAttempt) -> str:
        return obj.delivery.target

    @admin.display(description="event")
    def event(self, obj: DeliveryAttempt) -> str:
        return obj.delivery.notice.event

    @admin.display(description="item")
    def item(self, obj: DeliveryAttempt) -> int:
        return obj.delivery.notice.item_id

    @admin.display(description="error")
    def error_shown(self, obj: DeliveryAttempt) -> str:
        return obj.error if len(obj.error) <= 120 else obj.error[:119] + "…"
