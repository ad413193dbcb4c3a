"""The notification admin: staff configure endpoints and subscriptions; secrets stay write-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client

from reviews.models import (
    AuditEntry,
    Delivery,
    DeliveryAttempt,
    Notice,
    ReviewItem,
    ReviewSubscription,
    WebhookEndpoint,
)

pytestmark = pytest.mark.django_db

ENDPOINTS = "/admin/reviews/webhookendpoint/"
SUBSCRIPTIONS = "/admin/reviews/reviewsubscription/"
DELIVERIES = "/admin/reviews/delivery/"
LOG = "/admin/reviews/deliveryattempt/"
SECRET = "very-secret-signing-key-4242"


@pytest.fixture(autouse=True)
def _static_root() -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def admin_client(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


@pytest.fixture
def logged(held: ReviewItem) -> DeliveryAttempt:
    hook = WebhookEndpoint.objects.create(
        name="ops", url="https://hooks.example.test/T1/xyz", secret=SECRET
    )
    notice, _ = Notice.objects.get_or_create(item=held, event="review.opened")
    delivery = Delivery.objects.create(notice=notice, endpoint=hook, target=hook.url_hint)
    return DeliveryAttempt.objects.create(
        delivery=delivery, number=1, status_code=500, error="HTTP 500 boom"
    )


def endpoint_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "chat",
        "url": "https://hooks.example.test/services/T000/B000/tokenpart",
        "secret": SECRET,
        "events": ["review.opened", "review.overdue"],
        "kinds": ["plan_approval"],
        "slack": "on",
        "active": "on",
    }
    data.update(overrides)
    return data


def test_every_notification_page_renders_for_an_admin(
    admin_client: Client, logged: DeliveryAttempt, reviewer: User
) -> None:
    sub = ReviewSubscription.objects.create(user=reviewer)
    hook = logged.delivery.endpoint
    assert hook is not None
    pages = [
        ENDPOINTS,
        ENDPOINTS + "add/",
        f"{ENDPOINTS}{hook.pk}/change/",
        SUBSCRIPTIONS,
        SUBSCRIPTIONS + "add/",
        f"{SUBSCRIPTIONS}{sub.pk}/change/",
        DELIVERIES,
        f"{DELIVERIES}{logged.delivery_id}/change/",
        LOG,
        f"{LOG}{logged.pk}/change/",
        LOG + "?ok__exact=0&q=boom",
    ]
    for page in pages:
        assert admin_client.get(page).status_code == 200, page
    listing = admin_client.get(LOG).content.decode()
    assert "HTTP 500 boom" in listing and "https://hooks.example.test/…" in listing


@pytest.mark.parametrize("page", [ENDPOINTS, ENDPOINTS + "add/", SUBSCRIPTIONS, DELIVERIES, LOG])
def test_notification_pages_are_refused_to_anyone_but_an_admin(
    client: Client, reviewer: User, page: str
) -> None:
    client.force_login(reviewer)
    response = client.get(page)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_log_is_read_only_even_for_an_admin(
    admin_client: Client, logged: DeliveryAttempt
) -> None:
    assert admin_client.get(LOG + "add/").status_code == 403
    response = admin_client.post(f"{LOG}{logged.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert DeliveryAttempt.objects.filter(pk=logged.pk).exists()


def test_an_admin_adds_an_endpoint_and_the_secret_is_never_shown_back(
    admin_client: Client,
) -> None:
    response = admin_client.post(ENDPOINTS + "add/", endpoint_form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    hook = WebhookEndpoint.objects.get(name="chat")
    assert (hook.secret, hook.slack, hook.events) == (
        SECRET,
        True,
        ["review.opened", "review.overdue"],
    )
    listing = admin_client.get(ENDPOINTS).content.decode()
    assert SECRET not in listing and "…4242" in listing
    assert "tokenpart" not in listing
    change = admin_client.get(f"{ENDPOINTS}{hook.pk}/change/").content.decode()
    assert SECRET not in change
    entry = AuditEntry.objects.get(object_type="webhook_endpoint")
    assert SECRET not in str(entry.after) and "tokenpart" not in str(entry.after)


def test_a_blank_secret_on_change_keeps_the_stored_one(admin_client: Client) -> None:
    hook = WebhookEndpoint.objects.create(
        name="chat", url="https://a.example.test/h", secret=SECRET
    )
    response = admin_client.post(
        f"{ENDPOINTS}{hook.pk}/change/", endpoint_form(secret="", url="https://b.example.test/h")
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    hook.refresh_from_db()
    assert (hook.secret, hook.url) == (SECRET, "https://b.example.test/h")


@pytest.mark.parametrize(
    "url",
    ["ftp://files.example.test/hook", "javascript:alert(1)", "file:///etc/passwd", "not a url"],
)
def test_a_webhook_url_that_is_not_http_is_refused(admin_client: Client, url: str) -> None:
    response = admin_client.post(ENDPOINTS + "add/", endpoint_form(url=url))
    assert response.status_code == 200
    assert "url" in response.context["adminform"].form.errors
    assert not WebhookEndpoint.objects.exists()


def test_a_short_or_missing_secret_is_refused(admin_client: Client) -> None:
    for secret in ("", "short"):
        response = admin_client.post(ENDPOINTS + "add/", endpoint_form(secret=secret))
        assert response.status_code == 200
        assert "secret" in response.context["adminform"].form.errors
    assert not WebhookEndpoint.objects.exists()


def test_an_admin_subscribes_a_reviewer_but_not_someone_without_the_role(
    admin_client: Client, reviewer: User, outsider: User
) -> None:
    data = {"events": ["review.overdue"], "kinds": [], "active": "on"}
    refused = admin_client.post(SUBSCRIPTIONS + "add/", {**data, "user": outsider.pk})
    assert refused.status_code == 200
    assert "not a reviewer" in str(refused.context["adminform"].form.errors["user"])
    response = admin_client.post(SUBSCRIPTIONS + "add/", {**data, "user": reviewer.pk})
    assert response.status_code == 302, response.context["adminform"].form.errors
    sub = ReviewSubscription.objects.get()
    assert (sub.user, sub.events, sub.kinds) == (reviewer, ["review.overdue"], [])


def test_the_model_itself_refuses_a_url_that_is_not_http() -> None:
    hook = WebhookEndpoint(name="x", url="ftp://files.example.test/hook", secret=SECRET)
    with pytest.raises(ValidationError) as refused:
        hook.full_clean()
    assert "url" in refused.value.message_dict
    hook.url, hook.events = "https://ok.example.test/h", ["review.nope"]
    with pytest.raises(ValidationError) as refused:
        hook.full_clean()
    assert list(refused.value.message_dict) == ["events"]
