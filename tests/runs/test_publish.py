"""The publisher's batching: commits queued behind a send go out as one group message per run."""

from __future__ import annotations

from runs.publish import _merge, review_changes


def event(seq: int, kind: str = "step.status", **payload: object) -> dict:
    return {"seq": seq, "kind": kind, "payload": payload}


def test_queued_batches_merge_per_run_keeping_each_runs_order() -> None:
    batches = [(1, [event(1)]), (2, [event(7)]), (1, [event(2), event(3)]), (2, [event(8)])]
    merged = _merge(batches)
    assert [(run, [e["seq"] for e in events]) for run, events in merged] == [
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
