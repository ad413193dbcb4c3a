"""The review-queue websocket: reviewers only, told after commit when an item opens, changes or closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.db import connections, transaction

from reviews.decisions import review_claim
from reviews.models import ApprovalPolicy, ReviewItem
from reviews.routing import websocket_urlpatterns
from runs.lifecycle.reviews import review_approve
from runs.models import Run
from runs.publish import publisher
from tests.reviews.conftest import all_ticks

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest_asyncio.fixture(autouse=True)
async def _close_consumer_connections() -> AsyncIterator[None]:
    """Close the consumer thread's connection so PostgreSQL can drop the test database."""
    yield
    await database_sync_to_async(connections.close_all)()


async def connect(user: object) -> WebsocketCommunicator:
    publisher.bind_loop(asyncio.get_running_loop())
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/reviews/")
    communicator.scope["user"] = user
    return communicator


@pytest.mark.parametrize("role", ["operator", "outsider"])
async def test_operators_and_outsiders_are_refused_with_4403(
    role: str, request: pytest.FixtureRequest
) -> None:
    user = await database_sync_to_async(request.getfixturevalue)(role)
    connected, code = await (await connect(user)).connect()
    assert (connected, code) == (False, 4403)


async def test_an_anonymous_visitor_is_refused() -> None:
    connected, code = await (await connect(AnonymousUser())).connect()
    assert (connected, code) == (False, 4403)


async def test_a_reviewer_hears_an_item_open_get_claimed_and_get_approved(
    reviewer: User,
    submit: Callable[..., Run],
    plan_doc: dict,
    global_policy: Callable[..., ApprovalPolicy],
) -> None:
    await database_sync_to_async(global_policy)("always")
    ws = await connect(reviewer)
    connected, _ = await ws.connect()
    assert connected

    run = await database_sync_to_async(submit)(plan_doc)
    opened = await ws.receive_json_from(timeout=5)
    item = await database_sync_to_async(ReviewItem.objects.get)(run=run)
    assert opened["type"] == "changed"
    assert [(c["item"], c["run"], c["kind"]) for c in opened["items"]] == [
        (item.pk, run.pk, "review.opened")
    ]

    await database_sync_to_async(review_claim)(item_id=item.pk, user=reviewer)
    claimed = await ws.receive_json_from(timeout=5)
    assert [(c["item"], c["kind"]) for c in claimed["items"]] == [(item.pk, "review.assigned")]

    await database_sync_to_async(review_approve)(
        item_id=item.pk, user=reviewer, checklist=all_ticks(item), reason=""
    )
    decided = await ws.receive_json_from(timeout=5)
    assert [(c["item"], c["kind"], c["status"]) for c in decided["items"]] == [
        (item.pk, "review.decided", "approved")
    ]
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_a_rolled_back_change_is_never_announced(reviewer: User, held: ReviewItem) -> None:
    ws = await connect(reviewer)
    assert (await ws.connect())[0]

    @database_sync_to_async
    def claim_then_roll_back() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            review_claim(item_id=held.pk, user=reviewer)
            raise RuntimeError("changed my mind")

    await claim_then_roll_back()
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()
