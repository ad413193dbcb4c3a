"""The run websocket: role checks, replay after a seq, live events after commit, each seq once
and in order, in messages of one event or a batch of consecutive ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.db import connections

from runs.events import RunCancelRequested
from runs.models import Run, Task
from runs.publish import publisher
from runs.routing import websocket_urlpatterns
from runs.statemachine import NewEvent, append_events, run_transition

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest_asyncio.fixture(autouse=True)
async def _close_consumer_connections() -> AsyncIterator[None]:
    """Consumers query from asgiref's worker thread; close its connection so PostgreSQL can
    drop the test database (a refused connect leaves it open otherwise)."""
    yield
    await database_sync_to_async(connections.close_all)()


@database_sync_to_async
def make_run_with_events(n: int) -> Run:
    run = Run.objects.create(task=Task.objects.create(title="t"))
    for _ in range(n):
        append_events(run.pk, [NewEvent("system", RunCancelRequested(by="x"))])
    return run


async def connect(user: object, run_id: int, after: int = 0) -> WebsocketCommunicator:
    publisher.bind_loop(asyncio.get_running_loop())
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/runs/{run_id}/?after={after}"
    )
    communicator.scope["user"] = user
    return communicator


def events_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The events one websocket message carries: itself, or a batch's items."""
    if message["type"] == "events":
        assert len(message["events"]) > 1  # a lone event is sent as itself
        return message["events"]
    assert message["type"] == "event", message
    return [message]


async def receive_events(ws: WebsocketCommunicator, n: int) -> tuple[list[dict[str, Any]], int]:
    """The next ``n`` events and how many websocket messages brought them."""
    events: list[dict[str, Any]] = []
    messages = 0
    while len(events) < n:
        events += events_of(await ws.receive_json_from(timeout=5))
        messages += 1
    assert len(events) == n, [e["seq"] for e in events]
    return events, messages


async def test_an_operator_gets_missed_events_then_live_ones(operator: User) -> None:
    run = await make_run_with_events(3)
    ws = await connect(operator, run.pk, after=1)
    connected, _ = await ws.connect()
    assert connected
    replayed, messages = await receive_events(ws, 2)
    assert ([m["seq"] for m in replayed], messages) == ([2, 3], 1)
    await database_sync_to_async(run_transition)(run_id=run.pk, to="executing", reason="go")
    live = await ws.receive_json_from(timeout=5)
    assert (live["seq"], live["kind"], live["payload"]["to_status"]) == (
        4,
        "run.status",
        "executing",
    )
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_a_user_without_a_role_is_refused(outsider: User) -> None:
    run = await make_run_with_events(1)
    connected, code = await (await connect(outsider, run.pk)).connect()
    assert (connected, code) == (False, 4403)


async def test_an_anonymous_visitor_is_refused() -> None:
    run = await make_run_with_events(1)
    connected, code = await (await connect(AnonymousUser(), run.pk)).connect()
    assert (connected, code) == (False, 4403)


async def test_an_unknown_run_is_refused(reviewer: User) -> None:
    ws = await connect(reviewer, 999_999)
    connected, code = await ws.connect()
    assert (connected, code) == (False, 4404)


async def test_events_arriving_out_of_order_are_delivered_once_in_order(operator: User) -> None:
    run = await make_run_with_events(3)
    ws = await connect(operator, run.pk, after=3)
    assert (await ws.connect())[0]
    await database_sync_to_async(append_events_sync)(run.pk, 2)  # seqs 4 and 5, not published
    # 5 overtakes 4 (they travelled by different loops): only 5 reaches the group.
    from channels.layers import get_channel_layer

    from runs.models import TranscriptEvent
    from runs.publish import event_message, run_group

    fifth = await database_sync_to_async(TranscriptEvent.objects.get)(run=run, seq=5)
    await get_channel_layer().group_send(
        run_group(run.pk), {"type": "run.events", "events": [event_message(fifth)]}
    )
    got, _ = await receive_events(ws, 2)
    assert [e["seq"] for e in got] == [4, 5]  # 4 came from the database, before 5
    await get_channel_layer().group_send(  # a late duplicate is dropped
        run_group(run.pk), {"type": "run.events", "events": [event_message(fifth)]}
    )
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_the_events_of_one_commit_arrive_as_one_message_in_seq_order(
    operator: User,
) -> None:
    run = await make_run_with_events(1)
    ws = await connect(operator, run.pk, after=1)
    assert (await ws.connect())[0]
    await database_sync_to_async(append_events)(
        run.pk, [NewEvent("system", RunCancelRequested(by=who)) for who in "abc"]
    )
    message = await ws.receive_json_from(timeout=5)
    assert message["type"] == "events"
    assert [(e["seq"], e["payload"]["by"]) for e in message["events"]] == [
        (2, "a"),
        (3, "b"),
        (4, "c"),
    ]
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_a_long_replay_comes_in_batches_of_at_most_batch_max_events(
    operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runs import publish

    monkeypatch.setattr(publish, "BATCH_MAX_EVENTS", 2)
    run = await make_run_with_events(5)
    ws = await connect(operator, run.pk, after=0)
    assert (await ws.connect())[0]
    sizes = [len(events_of(await ws.receive_json_from(timeout=5))) for _ in range(3)]
    assert sizes == [2, 2, 1]
    assert await ws.receive_nothing(timeout=0.2)
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(timeout=5) == {"type": "pong", "seq": 5}
    await ws.disconnect()


async def test_a_batch_overlapping_what_was_sent_delivers_only_the_rest_once(
    operator: User,
) -> None:
    from channels.layers import get_channel_layer

    from runs.publish import run_group

    run = await make_run_with_events(2)
    ws = await connect(operator, run.pk, after=0)
    assert (await ws.connect())[0]
    assert [e["seq"] for e in (await receive_events(ws, 2))[0]] == [1, 2]
    await database_sync_to_async(append_events_sync)(run.pk, 2)  # seqs 3 and 4, not published
    # A batch of 2..4 (2 was replayed already), then one of 1..4 (all sent by then). A batch's
    # text is only passed on when it starts right after the last seq sent: 3 and 4 come from
    # the database, once, and nothing of the bogus texts reaches the client.
    for first, last in ((2, 4), (1, 4)):
        await get_channel_layer().group_send(
            run_group(run.pk),
            {"type": "run.events", "first": first, "last": last, "text": '{"type":"bogus"}'},
        )
    got, messages = await receive_events(ws, 2)
    assert ([e["seq"] for e in got], messages) == ([3, 4], 1)
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_a_batch_that_follows_the_last_seq_sent_is_passed_on_as_it_is(
    operator: User,
) -> None:
    from channels.layers import get_channel_layer

    from runs.publish import run_group

    run = await make_run_with_events(2)
    ws = await connect(operator, run.pk, after=2)
    assert (await ws.connect())[0]
    text = '{"type":"events","events":[{"seq":3},{"seq":4}]}'
    await get_channel_layer().group_send(
        run_group(run.pk), {"type": "run.events", "first": 3, "last": 4, "text": text}
    )
    assert await ws.receive_from(timeout=5) == text  # no database read, no re-encoding
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(timeout=5) == {"type": "pong", "seq": 4}
    await ws.disconnect()


def append_events_sync(run_id: int, n: int) -> None:
    from unittest import mock

    from django.db import transaction

    with mock.patch.object(publisher, "submit"), transaction.atomic():
        append_events(run_id, [NewEvent("system", RunCancelRequested(by="y")) for _ in range(n)])


# --------------------------------------------------------------------------- heartbeat
async def test_a_ping_gets_a_pong_naming_the_last_seq_sent(reviewer: User) -> None:
    run = await make_run_with_events(2)
    ws = await connect(reviewer, run.pk, after=0)
    assert (await ws.connect())[0]
    assert [e["seq"] for e in (await receive_events(ws, 2))[0]] == [1, 2]
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(timeout=5) == {"type": "pong", "seq": 2}
    await ws.disconnect()


async def test_an_event_whose_message_was_lost_arrives_with_the_next_heartbeat(
    operator: User,
) -> None:
    run = await make_run_with_events(2)
    ws = await connect(operator, run.pk, after=2)
    assert (await ws.connect())[0]
    # Committed, but its group message never came (pub/sub delivers at most once), and no
    # later event will reveal the gap: the run's last event.
    await database_sync_to_async(append_events_sync)(run.pk, 1)
    assert await ws.receive_nothing(timeout=0.2)
    await ws.send_json_to({"type": "ping"})
    assert [e["seq"] for e in (await receive_events(ws, 1))[0]] == [3]
    assert await ws.receive_json_from(timeout=5) == {"type": "pong", "seq": 3}
    await ws.disconnect()


async def test_garbage_from_the_client_is_ignored_and_the_socket_stays_open(
    operator: User,
) -> None:
    run = await make_run_with_events(0)
    ws = await connect(operator, run.pk)
    assert (await ws.connect())[0]
    await ws.send_to(text_data="{not json")
    await ws.send_to(bytes_data=b"\x00\x01")
    await ws.send_json_to({"type": "subscribe", "run": 12})
    assert await ws.receive_nothing(timeout=0.2)
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from(timeout=5))["type"] == "pong"
    await ws.disconnect()


# --------------------------------------------------------------------------- runs list
async def connect_list(user: object) -> WebsocketCommunicator:
    publisher.bind_loop(asyncio.get_running_loop())
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/runs/")
    communicator.scope["user"] = user
    return communicator


async def test_the_runs_list_hears_new_runs_and_status_changes_but_not_step_noise(
    operator: User, reviewer: User
) -> None:
    ws = await connect_list(reviewer)
    assert (await ws.connect())[0]
    from runs.events import RunCreated

    run = await make_run_with_events(0)
    await database_sync_to_async(append_events)(
        run.pk, [NewEvent("system", RunCreated(task="t", submitted_by="olivia"))]
    )
    created = await ws.receive_json_from(timeout=5)
    assert created == {
        "type": "changed",
        "runs": [{"run": run.pk, "seq": 1, "kind": "run.created", "status": "queued"}],
    }
    await database_sync_to_async(append_events)(
        run.pk, [NewEvent("system", RunCancelRequested(by="x"))]
    )
    assert await ws.receive_nothing(timeout=0.3)  # not a list change
    await database_sync_to_async(run_transition)(run_id=run.pk, to="executing", reason="go")
    changed = await ws.receive_json_from(timeout=5)
    assert changed["runs"] == [
        {"run": run.pk, "seq": 3, "kind": "run.status", "status": "executing"}
    ]
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(timeout=5) == {"type": "pong"}
    await ws.disconnect()


async def test_the_runs_list_socket_refuses_a_user_without_a_role(outsider: User) -> None:
    connected, code = await (await connect_list(outsider)).connect()
    assert (connected, code) == (False, 4403)


async def test_the_runs_list_socket_refuses_an_anonymous_visitor() -> None:
    connected, code = await (await connect_list(AnonymousUser())).connect()
    assert (connected, code) == (False, 4403)
