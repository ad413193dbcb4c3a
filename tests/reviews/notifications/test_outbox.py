"""Events are recorded once per item and fanned out once per endpoint and subscribed reviewer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from reviews.models import Delivery, Notice, ReviewItem, WebhookEndpoint
from reviews.notifications import notice_record, notices_sweep
from reviews.notifications.outbox import due_event, near_moment
from runs.lifecycle.worker import RunWorker
from tests.reviews.notifications.conftest import People, Receiver, deliver_all
from tests.runs.lifecycle.test_races import race

pytestmark = pytest.mark.django_db(transaction=True)


def events_received(receiver: Receiver) -> list[tuple[int, str]]:
    return [(r.json["item"]["id"], r.json["event"]) for r in receiver.received]


def test_an_opened_item_is_recorded_once_its_opening_commits(
    held: ReviewItem, endpoint: Callable[..., WebhookEndpoint]
) -> None:
    # ``held`` opened before any endpoint existed: its notice is there, with no delivery.
    notice = Notice.objects.get(item=held)
    assert (notice.event, notice.deliveries.count()) == ("review.opened", 0)


def test_an_opening_that_rolls_back_records_nothing(
    submit: Callable[..., Any], plan_doc: dict, global_policy: Callable[..., Any]
) -> None:
    global_policy("always")
    with pytest.raises(RuntimeError), transaction.atomic():
        submit(plan_doc)
        raise RuntimeError("the caller fails after opening the item")
    assert not Notice.objects.exists()
    assert not DBTaskResult.objects.exists()


def test_deliveries_go_to_matching_endpoints_and_subscribed_reviewers_only(
    submit: Callable[..., Any],
    plan_doc: dict,
    global_policy: Callable[..., Any],
    endpoint: Callable[..., WebhookEndpoint],
    people: People,
) -> None:
    wanted = endpoint(name="all")
    endpoint(name="escalations", kinds=["escalation"])
    endpoint(name="overdue", events=["review.overdue"])
    endpoint(name="off", active=False)
    global_policy("always")
    run = submit(plan_doc)
    deliveries = Delivery.objects.filter(notice__item__run=run)
    assert sorted(d.target for d in deliveries) == sorted([wanted.url_hint, "rob@example.test"])
    assert {d.endpoint_id for d in deliveries} == {wanted.pk, None}
    assert DBTaskResult.objects.filter(queue_name="notifications").count() == 2


def test_recording_an_event_twice_delivers_it_once(
    held: ReviewItem, endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    endpoint()
    first = notice_record(item_id=held.pk, event="review.near_sla")
    again = notice_record(item_id=held.pk, event="review.near_sla")
    assert first is not None and again is None
    deliver_all()
    assert events_received(receiver) == [(held.pk, "review.near_sla")]


def test_the_sweep_sends_near_sla_and_overdue_once_each_however_often_it_runs(
    fast_notify: None,
    held: ReviewItem,
    endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    people: People,
) -> None:
    endpoint()
    assert held.due_at is not None
    before_near = near_moment(held.created_at, held.due_at) - timedelta(seconds=1)
    assert notices_sweep(now=before_near) == []
    near = held.due_at - timedelta(seconds=1)
    assert notices_sweep(now=near) == [(held.pk, "review.near_sla")]
    assert notices_sweep(now=near) == []
    late = held.due_at + timedelta(seconds=1)
    assert notices_sweep(now=late) == [(held.pk, "review.overdue")]
    assert notices_sweep(now=late) == []
    deliver_all()
    deliver_all()
    assert events_received(receiver) == [(held.pk, "review.near_sla"), (held.pk, "review.overdue")]
    assert [m.subject for m in mail.outbox] == [
        f"[plannerweb] Review {held.pk} (Plan approval) nears its SLA",
        f"[plannerweb] Review {held.pk} (Plan approval) is overdue",
    ]
    assert all(m.to == ["rob@example.test"] for m in mail.outbox)


def test_an_item_first_seen_overdue_gets_no_near_sla(
    held: ReviewItem, endpoint: Callable[..., WebhookEndpoint]
) -> None:
    assert held.due_at is not None
    assert notices_sweep(now=held.due_at + timedelta(hours=1)) == [(held.pk, "review.overdue")]
    assert notices_sweep(now=held.due_at + timedelta(hours=2)) == []
    assert set(Notice.objects.values_list("event", flat=True)) == {
        "review.opened",
        "review.overdue",
    }


def test_decided_items_are_not_swept(held: ReviewItem) -> None:
    ReviewItem.objects.filter(pk=held.pk).update(status="approved")
    assert held.due_at is not None
    assert notices_sweep(now=held.due_at + timedelta(hours=1)) == []


def test_the_sweep_records_an_opening_whose_commit_hook_was_lost(held: ReviewItem) -> None:
    Notice.objects.filter(item=held).delete()
    assert notices_sweep(now=held.created_at) == [(held.pk, "review.opened")]


def test_the_workers_periodic_sweep_finds_items_nearing_their_sla(
    held: ReviewItem, endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    endpoint()
    now = timezone.now()
    ReviewItem.objects.filter(pk=held.pk).update(
        created_at=now - timedelta(minutes=55), due_at=now + timedelta(minutes=5)
    )
    RunWorker(worker_id="sweeper", recovery_seconds=60).recover_due()
    deliver_all()
    assert events_received(receiver) == [(held.pk, "review.near_sla")]


@pytest.mark.parametrize(
    ("percent", "minutes", "near_after_minutes"), [(80, 0, 48), (50, 0, 30), (80, 15, 45)]
)
def test_near_sla_starts_at_the_configured_share_or_minutes_before_due(
    settings: Any, percent: int, minutes: int, near_after_minutes: int
) -> None:
    settings.PLANNERWEB_NOTIFY_NEAR_SLA_PERCENT = percent
    settings.PLANNERWEB_NOTIFY_NEAR_SLA_MINUTES = minutes
    opened = timezone.now()
    due = opened + timedelta(minutes=60)
    assert near_moment(opened, due) == opened + timedelta(minutes=near_after_minutes)
    assert due_event(opened, due, opened + timedelta(minutes=near_after_minutes - 1)) is None
    assert due_event(opened, due, opened + timedelta(minutes=near_after_minutes)) == (
        "review.near_sla"
    )
    assert due_event(opened, due, due) == "review.near_sla"
    assert due_event(opened, due, due + timedelta(seconds=1)) == "review.overdue"


def test_a_delivery_whose_task_was_lost_is_queued_again_by_the_sweep(
    fast_notify: None,
    held: ReviewItem,
    endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
) -> None:
    endpoint()
    notice_record(item_id=held.pk, event="review.near_sla")
    DBTaskResult.objects.all().delete()  # the enqueue was lost
    delivery = Delivery.objects.get()
    assert delivery.next_attempt_at is not None
    soon = delivery.next_attempt_at + timedelta(minutes=1)
    notices_sweep(now=soon)
    assert not DBTaskResult.objects.exists()  # not stale yet: its task may only be late
    later = delivery.next_attempt_at + timedelta(minutes=11)
    notices_sweep(now=later)
    notices_sweep(now=later)
    assert DBTaskResult.objects.count() == 1
    deliver_all()
    assert events_received(receiver) == [(held.pk, "review.near_sla")]
    assert Delivery.objects.get().status == "delivered"


def test_a_stale_delivery_out_of_attempts_is_closed_as_failed(
    fast_notify: None, held: ReviewItem, endpoint: Callable[..., WebhookEndpoint]
) -> None:
    endpoint()
    notice_record(item_id=held.pk, event="review.near_sla")
    DBTaskResult.objects.all().delete()
    Delivery.objects.update(attempts=3)  # the last attempt's worker died mid-flight
    notices_sweep(now=timezone.now() + timedelta(minutes=11))
    assert Delivery.objects.get().status == "failed"
    assert not DBTaskResult.objects.exists()


@pytest.mark.postgres
def test_workers_sweeping_at_once_record_and_deliver_each_event_once(
    fast_notify: None,
    held: ReviewItem,
    endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    people: People,
) -> None:
    endpoint()
    endpoint(name="second")
    assert held.due_at is not None
    late = held.due_at + timedelta(seconds=1)
    results = race(*[lambda: notices_sweep(now=late) for _ in range(4)])
    assert sum(len(r) for r in results) == 1, results
    assert Notice.objects.filter(item=held, event="review.overdue").count() == 1
    overdue = Delivery.objects.filter(notice__event="review.overdue")
    assert sorted(overdue.values_list("target", flat=True)) == sorted(
        [receiver.url.rsplit("/", 1)[0] + "/…"] * 2 + ["rob@example.test"]
    )
    deliver_all()
    assert events_received(receiver).count((held.pk, "review.overdue")) == 2
    assert [m.to for m in mail.outbox if "overdue" in m.subject] == [["rob@example.test"]]
