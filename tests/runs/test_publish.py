"""The publisher's batching and frames: commits queued behind a send go out as one group
message per run and run of consecutive seqs, carrying one websocket text for all its events, and
a frame built from stored JSON text equals the one built from the row."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pytest import MonkeyPatch

from runs.events import StepStatusChanged, event_json, event_payload
from runs.publish import (
    Framed,
    Outgoing,
    _merge,
    batches,
    event_frame,
    event_message,
    events_frame,
    list_changes,
    outgoing_rows,
    review_changes,
    run_events_message,
)


def event(seq: int, kind: str = "step.status", **payload: object) -> Outgoing:
    return Outgoing(seq, "executor", kind, "{}", "2026-12-02T00:00:00+00:00", payload or None)


def test_queued_batches_merge_per_run_keeping_each_runs_order() -> None:
    batches = [(1, [event(1)]), (2, [event(7)]), (1, [event(2), event(3)]), (2, [event(8)])]
    merged = _merge(batches)
    assert [(run, [e.seq for e in events]) for run, events in merged] == [
        (1, [1, 2, 3]),
        (2, [7, 8]),
    ]


def framed(seq: int, frame: str = "{}") -> Framed:
    return Framed(seq, frame)


def test_a_batch_is_cut_where_seqs_are_not_consecutive() -> None:
    cut = batches([framed(3), framed(4), framed(6), framed(5), framed(6), framed(7)])
    assert [[e.seq for e in batch] for batch in cut] == [[3, 4], [6], [5, 6, 7]]


def test_a_batch_is_cut_at_its_bounds_of_events_and_size(monkeypatch: MonkeyPatch) -> None:
    from runs import publish

    monkeypatch.setattr(publish, "BATCH_MAX_EVENTS", 3)
    cut = batches([framed(seq) for seq in range(1, 8)])
    assert [[e.seq for e in batch] for batch in cut] == [[1, 2, 3], [4, 5, 6], [7]]
    monkeypatch.setattr(publish, "BATCH_MAX_CHARS", 10)
    sized = [framed(1, "x" * 4), framed(2, "x" * 6), framed(3, "x" * 30), framed(4, "x")]
    assert [[e.seq for e in batch] for batch in batches(sized)] == [[1, 2], [3], [4]]


def test_the_group_message_names_its_seq_range_and_holds_every_frame_in_order() -> None:
    events = [
        framed(4, '{"type":"event","seq":4}'),
        framed(5, '{"type":"event","seq":5}'),
    ]
    message = run_events_message(events)
    assert (message["type"], message["first"], message["last"]) == ("run.events", 4, 5)
    assert json.loads(message["text"]) == {
        "type": "events",
        "events": [{"type": "event", "seq": 4}, {"type": "event", "seq": 5}],
    }


def test_a_lone_event_is_sent_as_its_own_frame() -> None:
    frame = '{"type":"event","seq":9}'
    assert events_frame([frame]) == frame
    assert run_events_message([framed(9, frame)])["text"] == frame


def test_only_review_events_reach_the_review_queue() -> None:
    events = [
        event(1, "run.status", to_status="awaiting_approval"),
        event(2, "review.opened", item_id=5, review_kind="plan_approval"),
        event(3, "review.decided", item_id=5, status="approved"),
    ]
    assert review_changes(9, events) == [
        {"item": 5, "run": 9, "seq": 2, "kind": "review.opened", "status": "open"},
        {"item": 5, "run": 9, "seq": 3, "kind": "review.decided", "status": "approved"},
    ]


def test_only_run_status_and_creation_reach_the_runs_list() -> None:
    events = [event(1, "run.created"), event(2), event(3, "run.status", to_status="executing")]
    assert list_changes(4, events) == [
        {"run": 4, "seq": 1, "kind": "run.created", "status": "queued"},
        {"run": 4, "seq": 3, "kind": "run.status", "status": "executing"},
    ]


class Row:
    """A TranscriptEvent as read back from the database."""

    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)


def test_a_frame_from_stored_json_text_is_the_frame_of_the_row() -> None:
    change = StepStatusChanged(
        step_id=3,
        step='migrate "users" ✓',
        from_status="running",
        to_status="succeeded",
        attempt=1,
        result={"path": "backups/a b.db", "rows": [1, 2.5, None], "note": "naïve\n"},
    )
    at = datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC)
    live = Outgoing(12, "executor", change.kind, event_json(change), at.isoformat()).framed(7).frame
    row = Row(
        run_id=7,
        seq=12,
        role="executor",
        kind=change.kind,
        payload=event_payload(change),
        created_at=at,
    )
    assert json.loads(live) == json.loads(event_frame(event_message(row)))
    assert json.loads(outgoing_rows([row])[0].framed(7).frame) == json.loads(live)
    assert json.loads(live)["payload"]["result"]["note"] == "naïve\n"
