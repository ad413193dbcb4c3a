"""The executor on a real database: scheduling, references, failure, rollback, retries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from runs.models import Run, Step, TranscriptEvent
from tests.runs import toolbox

pytestmark = pytest.mark.django_db(transaction=True)


def step(id: str, action: str, key: str, deps: tuple[str, ...] = (), **params: Any) -> dict:
    return {
        "id": id,
        "action": action,
        "params": {"key": key, "label": id, **params},
        "depends_on": list(deps),
    }


def statuses(run: Run) -> dict[str, str]:
    return dict(Step.objects.filter(run=run).values_list("key", "status"))


def events(run: Run, kind: str | None = None) -> list[TranscriptEvent]:
    qs = TranscriptEvent.objects.filter(run=run).order_by("seq")
    return list(qs.filter(kind=kind) if kind else qs)


def seq_of(run: Run, step_key: str, to_status: str) -> int:
    for e in events(run, "step.status"):
        if e.payload["step"] == step_key and e.payload["to_status"] == to_status:
            return e.seq
    raise AssertionError(f"no event for {step_key} -> {to_status}")


def test_independent_steps_really_run_at_the_same_time(
    execute: Callable[..., Run], key: str
) -> None:
    run = execute(
        {
            "goal": "g",
            "steps": [
                step("a", "rendezvous", key, group="pair", parties=2),
                step("b", "rendezvous", key, group="pair", parties=2),
            ],
        }
    )
    assert run.status == "succeeded", run.stop_reason
    assert statuses(run) == {"a": "succeeded", "b": "succeeded"}


def test_max_parallel_bounds_how_many_steps_overlap(execute: Callable[..., Run], key: str) -> None:
    run = execute(
        {"steps": [step(f"p{i}", "probe", key, want=2) for i in range(6)]}, max_parallel=2
    )
    assert run.status == "succeeded", run.stop_reason
    assert toolbox.MAX_ACTIVE[key] == 2


def test_a_step_starts_before_an_unrelated_slow_branch_finishes(
    execute: Callable[..., Run], key: str
) -> None:
    # "slow" only finishes after "second" started, which needs "first": a layered
    # scheduler would wait for "slow" before starting layer 2 and time out.
    run = execute(
        {
            "steps": [
                step("slow", "wait_gate", key, gate="g"),
                step("first", "record", key),
                step("second", "open_gate", key, ("first",), gate="g"),
            ]
        }
    )
    assert run.status == "succeeded", run.stop_reason
    calls = toolbox.CALLS[key]
    assert calls.index("start:second") < calls.index("end:slow")


def test_a_step_waits_for_all_of_its_dependencies(execute: Callable[..., Run], key: str) -> None:
    run = execute(
        {
            "steps": [
                step("a", "record", key),
                step("b", "record", key),
                step("c", "record", key, ("a", "b")),
                step("d", "record", key, ("c",)),
            ]
        }
    )
    assert run.status == "succeeded", run.stop_reason
    assert seq_of(run, "c", "running") > max(
        seq_of(run, "a", "succeeded"), seq_of(run, "b", "succeeded")
    )
    assert seq_of(run, "d", "running") > seq_of(run, "c", "succeeded")
    assert toolbox.CALLS[key][-2:] == ["c", "d"]


def test_a_plain_list_plan_runs_in_order(execute: Callable[..., Run], key: str) -> None:
    run = execute(
        [{"action": "record", "params": {"key": key, "label": f"s{i}"}} for i in range(4)]
    )
    assert run.status == "succeeded", run.stop_reason
    assert toolbox.CALLS[key] == ["s0", "s1", "s2", "s3"]


def test_params_can_use_an_earlier_steps_output(execute: Callable[..., Run], key: str) -> None:
    run = execute(
        {
            "steps": [
                step("backup", "record", key),
                step("migrate", "record", key, ("backup",), value="{{ steps.backup.result.path }}"),
                step(
                    "note",
                    "record",
                    key,
                    ("migrate",),
                    value="copied to {{ steps.migrate.result.value }}",
                ),
            ]
        }
    )
    assert run.status == "succeeded", run.stop_reason
    results = dict(Step.objects.filter(run=run).values_list("key", "result"))
    assert results["migrate"]["value"] == "/backups/backup.db"
    assert results["note"]["value"] == "copied to /backups/backup.db"


def test_a_failed_step_skips_its_dependents_and_rolls_back_in_order(
    execute: Callable[..., Run], key: str
) -> None:
    run = execute(
        {
            "goal": "migrate",
            "steps": [
                step("backup", "record", key),
                step("migrate", "fail", key, ("backup",)),
                step("verify", "record", key, ("migrate",)),
                step("notify", "record", key, ("verify",)),
            ],
            "rollback": [
                {"action": "record", "params": {"key": key, "label": "undo-1"}},
                {"action": "record", "params": {"key": key, "label": "undo-2"}},
            ],
        }
    )
    assert run.status == "rolled_back"
    assert "step migrate failed" in run.stop_reason
    assert statuses(run) == {
        "backup": "rolled_back",
        "migrate": "failed",
        "verify": "skipped",
        "notify": "skipped",
        "rollback-1": "succeeded",
        "rollback-2": "succeeded",
    }
    assert toolbox.CALLS[key] == ["backup", "migrate", "undo-1", "undo-2"]
    skipped = [e.payload for e in events(run, "step.status") if e.payload["to_status"] == "skipped"]
    assert "needs migrate" in skipped[0]["reason"]
    assert seq_of(run, "rollback-1", "succeeded") < seq_of(run, "rollback-2", "running")
    assert Step.objects.get(run=run, key="migrate").error == "migrate failed on purpose"


def test_rollback_steps_of_a_successful_run_are_skipped_not_left_pending(
    execute: Callable[..., Run], key: str
) -> None:
    run = execute(
        {
            "steps": [step("a", "record", key)],
            "rollback": [{"action": "record", "params": {"key": key, "label": "undo"}}],
        }
    )
    assert run.status == "succeeded"
    assert statuses(run) == {"a": "succeeded", "rollback-1": "skipped"}
    assert toolbox.CALLS[key] == ["a"]


def test_a_failure_without_rollback_steps_fails_the_run(
    execute: Callable[..., Run], key: str
) -> None:
    run = execute({"steps": [step("a", "fail", key), step("b", "record", key, ("a",))]})
    assert run.status == "failed"
    assert run.stop_reason == "step a failed: a failed on purpose"
    assert statuses(run) == {"a": "failed", "b": "skipped"}


def test_a_failing_rollback_step_lets_the_others_run_then_escalates(
    execute: Callable[..., Run], key: str
) -> None:
    run = execute(
        {
            "steps": [step("a", "fail", key)],
            "rollback": [
                {"action": "fail", "params": {"key": key, "label": "undo-1"}},
                {"action": "record", "params": {"key": key, "label": "undo-2"}},
            ],
        }
    )
    assert run.status == "escalated"
    assert "rollback-1 (fail) failed" in run.stop_reason
    assert statuses(run)["rollback-2"] == "succeeded"
    assert "undo-2" in toolbox.CALLS[key]


def test_an_idempotent_step_is_retried_until_it_succeeds(
    execute: Callable[..., Run], key: str
) -> None:
    run = execute({"steps": [step("a", "flaky", key, fail_times=2)]})
    assert run.status == "succeeded", run.stop_reason
    a = Step.objects.get(run=run, key="a")
    assert a.attempts == 3
    assert a.result == {"label": "a", "attempt": 3}
    retries = events(run, "step.retrying")
    assert [e.payload["attempt"] for e in retries] == [2, 3]
    assert retries[0].payload["error"] == "a failed on attempt 1"


def test_every_attempt_of_a_step_gets_the_same_idempotency_key_and_steps_get_their_own(
    execute: Callable[..., Run], make_tool: Callable[..., Any], key: str
) -> None:
    make_tool("keyed", "flaky_keyed", honours_idempotency_key=True, max_retries=2)
    run = execute({"steps": [step("a", "keyed", key, fail_times=2), step("b", "keyed", key)]})
    assert run.status == "succeeded", run.stop_reason
    keys = {s.key: str(s.idempotency_key) for s in Step.objects.filter(run=run)}
    assert sorted(toolbox.CALLS[key]) == sorted(
        [f"a#1:{keys['a']}", f"a#2:{keys['a']}", f"a#3:{keys['a']}", f"b#1:{keys['b']}"]
    )
    assert keys["a"] != keys["b"]


def test_retries_stop_after_the_tools_limit(execute: Callable[..., Run], key: str) -> None:
    run = execute({"steps": [step("a", "flaky", key, fail_times=10)]})
    assert run.status == "failed"
    assert Step.objects.get(run=run, key="a").attempts == 3
    assert toolbox.CALLS[key] == ["a#1", "a#2", "a#3"]


def test_a_non_idempotent_step_is_never_retried(execute: Callable[..., Run], key: str) -> None:
    run = execute({"steps": [step("a", "flaky_once", key, fail_times=1)]})
    assert run.status == "failed"
    assert Step.objects.get(run=run, key="a").attempts == 1
    assert toolbox.CALLS[key] == ["a#1"]


@pytest.mark.parametrize("tool", ["not_json", "not_finite"])
def test_a_result_that_is_not_json_fails_only_its_step(
    execute: Callable[..., Run], key: str, tool: str
) -> None:
    run = execute({"steps": [step("a", tool, key), step("b", "record", key)]})
    assert run.status == "failed"
    a = Step.objects.get(run=run, key="a")
    assert "not JSON" in a.error
    assert statuses(run)["b"] in ("succeeded", "skipped")


@pytest.mark.parametrize("kind", ["nul", "surrogate"])
def test_a_result_holding_text_no_database_stores_is_stored_escaped(
    execute: Callable[..., Run], key: str, kind: str
) -> None:
    doc = {
        "steps": [step("a", "unstorable_text", key, kind=kind), step("b", "record", key, ("a",))]
    }
    run = execute(doc)
    assert run.status == "succeeded", run.stop_reason
    stored = Step.objects.get(run=run, key="a").result["text"]
    assert stored.startswith(f"{kind} ")
    assert "\x00" not in stored and "\ud800" not in stored


@pytest.mark.parametrize("kind", ["nul", "surrogate"])
def test_an_error_holding_text_no_database_stores_is_stored_escaped(
    execute: Callable[..., Run], key: str, kind: str
) -> None:
    run = execute({"steps": [step("a", "unstorable_text", key, kind=kind, fail=True)]})
    assert run.status == "failed", run.stop_reason
    error = Step.objects.get(run=run, key="a").error
    assert error.startswith(f"{kind} ") and "\x00" not in error and "\ud800" not in error


def test_the_transcript_is_gap_free_and_records_every_transition(
    execute: Callable[..., Run], key: str
) -> None:
    run = execute(
        {
            "steps": [
                step("a", "record", key),
                step("b", "record", key, ("a",)),
                step("c", "record", key, ("a",)),
            ]
        }
    )
    run.refresh_from_db()
    seqs = [e.seq for e in events(run)]
    assert seqs == list(range(1, len(seqs) + 1))
    transitions = [
        (e.payload["step"], e.payload["from_status"], e.payload["to_status"])
        for e in events(run, "step.status")
    ]
    for k in "abc":
        assert (k, "pending", "running") in transitions
        assert (k, "running", "succeeded") in transitions
    assert len(transitions) == 6
    kinds = [e.kind for e in events(run)]
    assert kinds[0] == "run.created"
    assert kinds[-1] == "run.status" and events(run)[-1].payload["to_status"] == "succeeded"


def _with_undo(spec: dict, key: str) -> dict:
    label = f"undo-{spec['id']}"
    ref = "{{ steps." + spec["id"] + ".result.path }}"
    return {
        **spec,
        "undo": {"action": "record", "params": {"key": key, "label": label, "value": ref}},
    }


def test_undos_run_in_reverse_completion_order_by_the_transcript(
    execute: Callable[..., Run], key: str
) -> None:
    run = execute(
        {
            "steps": [
                _with_undo(step("a", "record", key), key),
                _with_undo(step("b", "record", key, ("a",)), key),
                _with_undo(step("c", "record", key, ("b",)), key),
                step("d", "fail", key, ("c",)),
            ]
        }
    )
    assert run.status == "rolled_back", run.stop_reason
    assert (
        seq_of(run, "c", "succeeded")
        > seq_of(run, "b", "succeeded")
        > seq_of(run, "a", "succeeded")
    )
    assert seq_of(run, "undo-c", "succeeded") < seq_of(run, "undo-b", "running")
    assert seq_of(run, "undo-b", "succeeded") < seq_of(run, "undo-a", "running")
    assert statuses(run) == {
        "a": "rolled_back",
        "b": "rolled_back",
        "c": "rolled_back",
        "d": "failed",
        "undo-a": "succeeded",
        "undo-b": "succeeded",
        "undo-c": "succeeded",
    }
    # An undo's params reference its own step's result.
    assert Step.objects.get(run=run, key="undo-b").result["value"] == "/backups/b.db"
    planned = events(run, "rollback.planned")[0].payload
    assert planned["order"] == ["undo-c", "undo-b", "undo-a"]
    undone = {
        e.payload["step"]: e.payload["reason"]
        for e in events(run, "step.status")
        if e.payload["to_status"] == "rolled_back"
    }
    assert undone == {"a": "undone by undo-a", "b": "undone by undo-b", "c": "undone by undo-c"}


def test_undos_of_independent_steps_overlap(execute: Callable[..., Run], key: str) -> None:
    def undo_meeting(id: str) -> dict:
        return {
            **step(id, "record", key),
            "undo": {
                "action": "rendezvous",
                "params": {"key": key, "label": f"undo-{id}", "group": "undo", "parties": 2},
            },
        }

    run = execute(
        {"steps": [undo_meeting("a"), undo_meeting("b"), step("c", "fail", key, ("a", "b"))]}
    )
    assert run.status == "rolled_back", run.stop_reason
    assert statuses(run)["undo-a"] == statuses(run)["undo-b"] == "succeeded"


def test_an_undo_is_skipped_when_its_step_did_not_succeed(
    execute: Callable[..., Run], key: str
) -> None:
    run = execute(
        {
            "steps": [_with_undo(step("a", "fail", key), key)],
            "rollback": [{"action": "record", "params": {"key": key, "label": "r"}, "undoes": "a"}],
        }
    )
    assert run.status == "rolled_back", run.stop_reason
    assert statuses(run) == {"a": "failed", "undo-a": "skipped", "rollback-1": "skipped"}
    assert toolbox.CALLS[key] == ["a"]
    assert Step.objects.get(run=run, key="rollback-1").undoes == "a"
