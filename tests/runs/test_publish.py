"""The publisher's batching and frames: commits queued behind a send go out as one group
message per run, and a frame built from stored JSON text equals the one built from the row."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from runs.events import StepStatusChanged, event_json, event_payload
from runs.publish import (
    Outgoing,
    _merge,
    event_frame,
    event_message,
    list_changes,
    outgoing_rows,
    review_changes,
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
    live = Outgoing(12, "executor", change.kind, event_json(change), at.isoformat()).frame(7)
    row = Row(
        run_id=7,
        seq=12,
        role="executor",
        kind=change.kind,
        payload=event_payload(change),
        created_at=at,
    )
    assert json.loads(live) == json.loads(event_frame(event_message(row)))
    assert json.loads(outgoing_rows([row])[0].frame(7)) == json.loads(live)
    assert json.loads(live)["payload"]["result"]["note"] == "naïve\n"
