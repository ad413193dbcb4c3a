"""Resource locks on a real database, with runs executing side by side in this process.

Each test drives the order of events through the lock rows themselves (a holding
step stays inside its call until the others queue), never through timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django_tasks_db.models import DBTaskResult

from runs.lifecycle.cancel import run_cancel
from runs.lifecycle.claim import run_execute
from runs.lifecycle.recovery import runs_recover
from runs.lifecycle.submit import run_submit_plan
from runs.models import ResourceLock, Run, Step, Tool, TranscriptEvent
from tests.runs import toolbox

pytestmark = pytest.mark.django_db(transaction=True)

ENV_LOCK = "env:{{ params.environment }}"


@pytest.fixture
def locked_tools(fast_settings: Any, make_tool: Callable[..., Tool]) -> None:
    fast_settings.PLANNERWEB_LOCK_POLL_SECONDS = 0.02
    # A live holder's lease must not lapse on a busy machine (waiters clear lapsed ones).
    fast_settings.PLANNERWEB_HEARTBEAT_SECONDS = 0.5
    schema = {"type": "object", "properties": {"environment": {"type": "string"}}}
    make_tool("deploy", "hold_lock", locks=[ENV_LOCK], parameters_schema=schema)
    make_tool("hold", "hold_lock")  # no locks of its own: steps declare them


@pytest.fixture
def threads() -> Iterator[list[threading.Thread]]:
    started: list[threading.Thread] = []
    yield started
    for thread in started:
        thread.join(30)
        assert not thread.is_alive(), "an executor thread never ended"


def submit(key: str, label: str, *, action: str = "deploy", **params: Any) -> Run:
    step = {
        "id": "deploy",
        "action": action,
        "params": {"key": key, "label": label, "environment": "production", **params},
    }
    if "locks" in params:
        step["locks"] = params.pop("locks")
        step["params"].pop("locks")
    return run_submit_plan(title=label, document={"steps": [step]}, submitted_by=None)


def execute_in_thread(run: Run, started: list[threading.Thread]) -> None:
    def work() -> None:
        try:
            run_execute(run_id=run.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    started.append(thread)


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(1000):
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def waiting(run: Run) -> bool:
    return ResourceLock.objects.filter(run=run, granted=False).exists()


def holding(run: Run) -> bool:
    return ResourceLock.objects.filter(run=run, granted=True).exists()


def ended(*runs: Run) -> Callable[[], bool]:
    ids = [r.pk for r in runs]
    return lambda: not Run.objects.filter(pk__in=ids, finished_at__isnull=True).exists()


def assert_no_overlap(calls: list[str]) -> None:
    """Every start is followed by its own end before anything else starts."""
    for start, end in zip(calls[::2], calls[1::2], strict=True):
        assert start.startswith("start:") and end == "end:" + start[6:], calls


def test_a_second_run_waits_visibly_for_the_lock_the_first_holds_then_runs(
    locked_tools: None, key: str, calls: list[str], threads: list[threading.Thread], operator: User
) -> None:
    first = submit(key, "first", gate="go")
    second = submit(key, "second")
    execute_in_thread(first, threads)
    wait_until(lambda: holding(first), "the first run to hold its lock")
    execute_in_thread(second, threads)
    wait_until(lambda: waiting(second), "the second run to queue")
    wanted = f"waiting for lock env:production, held by run {first.pk} (step deploy)"
    wait_until(
        lambda: TranscriptEvent.objects.filter(run=second, kind="step.lock_waiting").exists(),
        "the waiting event",
    )

    client = Client()
    client.force_login(operator)
    (step,) = client.get(f"/api/runs/{second.pk}/steps").json()
    assert step["status"] == "pending"
    assert step["waiting_for_lock"] == {
        "lock": "env:production",
        "held_by_run": first.pk,
        "held_by_step": "deploy",
        "message": wanted,
    }
    assert wanted in client.get(f"/runs/{second.pk}/").content.decode()
    event = TranscriptEvent.objects.get(run=second, kind="step.lock_waiting")
    assert event.payload["held_by_run"] == first.pk

    toolbox.open_gate_now(key, "go")
    wait_until(ended(first, second), "both runs to end")
    assert calls == ["start:first", "end:first", "start:second", "end:second"]
    assert set(Run.objects.values_list("status", flat=True)) == {"succeeded"}
    assert not ResourceLock.objects.exists()
    (step,) = client.get(f"/api/runs/{second.pk}/steps").json()
    assert step["waiting_for_lock"] is None
    acquired = TranscriptEvent.objects.get(run=second, kind="step.lock_acquired")
    assert acquired.payload["locks"] == ["env:production"]


def test_runs_different_keys_do_not_wait_for_each_other(
    locked_tools: None, key: str, calls: list[str], threads: list[threading.Thread]
) -> None:
    # The first stays inside until a step queues: with another key, nobody ever does,
    # so it only ends once the test opens its gate after the second run finished.
    first = submit(key, "first", gate="go")
    second = submit(key, "second", environment="staging")
    execute_in_thread(first, threads)
    wait_until(lambda: holding(first), "the first run to hold its lock")
    execute_in_thread(second, threads)
    wait_until(ended(second), "the second run to end beside the first")
    toolbox.open_gate_now(key, "go")
    wait_until(ended(first), "the first run to end")
    assert calls == ["start:first", "start:second", "end:second", "end:first"]


def test_waiting_runs_get_the_lock_first_come_first_served(
    locked_tools: None, key: str, calls: list[str], threads: list[threading.Thread]
) -> None:
    holder = submit(key, "holder", gate="go")
    execute_in_thread(holder, threads)
    wait_until(lambda: holding(holder), "the holder to hold its lock")
    queued = []
    for label in ("b", "c", "d", "e"):
        run = submit(key, label)
        execute_in_thread(run, threads)
        wait_until(lambda run=run: waiting(run), f"{label} to queue")  # type: ignore[misc]
        queued.append(run)
    toolbox.open_gate_now(key, "go")
    wait_until(ended(holder, *queued), "every run to end")
    assert_no_overlap(calls)
    assert [c for c in calls if c.startswith("start:")] == [
        "start:holder",
        "start:b",
        "start:c",
        "start:d",
        "start:e",
    ]


def test_steps_needing_several_keys_take_them_in_one_order_and_never_deadlock(
    locked_tools: None, key: str, calls: list[str], threads: list[threading.Thread]
) -> None:
    # Half declare the keys one way round, half the other: taken as declared, two of
    # them could each hold one key and wait for the other forever.
    orders = (["db:{{ params.db }}", ENV_LOCK], [ENV_LOCK, "db:{{ params.db }}"])
    runs = [
        submit(key, f"r{i}", action="hold", db="main", locks=orders[i % 2], waiters=0 if i else 5)
        for i in range(6)
    ]
    execute_in_thread(runs[0], threads)  # holds both keys until the five others queue
    wait_until(lambda: holding(runs[0]), "the first run to hold its locks")
    for run in runs[1:]:
        execute_in_thread(run, threads)
    wait_until(ended(*runs), "every run to end")
    assert set(Run.objects.values_list("status", flat=True)) == {"succeeded"}, [
        r.stop_reason for r in Run.objects.all()
    ]
    assert_no_overlap(calls)
    for event in TranscriptEvent.objects.filter(kind="step.lock_acquired"):
        assert event.payload["locks"] == ["db:main", "env:production"]
    # Waiting for the second key means holding the first: never the other way round.
    for event in TranscriptEvent.objects.filter(kind="step.lock_waiting"):
        assert event.payload["lock"] in ("db:main", "env:production")
    assert not ResourceLock.objects.exists()


def test_cancelling_the_holder_releases_the_lock_to_the_next_run(
    locked_tools: None, key: str, calls: list[str], threads: list[threading.Thread]
) -> None:
    holder = submit(key, "holder", gate="never")
    second = submit(key, "second")
    execute_in_thread(holder, threads)
    wait_until(lambda: holding(holder), "the holder to hold its lock")
    execute_in_thread(second, threads)
    wait_until(lambda: waiting(second), "the second run to queue")
    run_cancel(run_id=holder.pk, user=None)
    wait_until(ended(holder, second), "both runs to end")
    statuses = dict(Run.objects.values_list("pk", "status"))
    assert statuses == {holder.pk: "cancelled", second.pk: "succeeded"}
    assert calls == ["start:holder", "start:second", "end:second"]
    assert not ResourceLock.objects.exists()


def test_cancelling_a_waiting_run_leaves_its_place_in_line_to_the_next(
    locked_tools: None, key: str, calls: list[str], threads: list[threading.Thread]
) -> None:
    holder = submit(key, "holder", gate="go")
    second = submit(key, "second")
    third = submit(key, "third")
    execute_in_thread(holder, threads)
    wait_until(lambda: holding(holder), "the holder to hold its lock")
    for run in (second, third):
        execute_in_thread(run, threads)
        wait_until(lambda run=run: waiting(run), "queued")  # type: ignore[misc]
    run_cancel(run_id=second.pk, user=None)
    wait_until(ended(second), "the waiting run to be cancelled")
    assert not ResourceLock.objects.filter(run=second).exists()
    assert Step.objects.get(run=second).status == "cancelled"
    toolbox.open_gate_now(key, "go")
    wait_until(ended(holder, third), "the others to end")
    assert calls == ["start:holder", "end:holder", "start:third", "end:third"]
    assert not ResourceLock.objects.exists()


def test_a_failed_run_gives_up_the_locks_its_steps_still_wait_for(
    locked_tools: None, make_tool: Callable[..., Tool], key: str, calls: list[str]
) -> None:
    make_tool("fail", "fail")
    other = submit(key, "other")
    ResourceLock.objects.create(
        key="env:production",
        run=other,
        step=Step.objects.get(run=other),
        granted=True,
        created_at=other.created_at,
    )
    run = run_submit_plan(
        title="t",
        document={
            "steps": [
                {"id": "boom", "action": "fail", "params": {"key": key, "label": "boom"}},
                {
                    "id": "deploy",
                    "action": "deploy",
                    "params": {"key": key, "label": "x", "environment": "production"},
                },
            ]
        },
        submitted_by=None,
    )
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert dict(Step.objects.filter(run=run).values_list("key", "status")) == {
        "boom": "failed",
        "deploy": "skipped",
    }
    assert not ResourceLock.objects.filter(run=run).exists()


def test_an_executor_taking_a_run_over_drops_what_the_last_one_held(
    locked_tools: None, key: str, calls: list[str]
) -> None:
    run = submit(key, "again")
    step = Step.objects.get(run=run)
    # What a worker that died before its step started leaves: the lock granted, the step pending.
    ResourceLock.objects.create(
        key="env:production", run=run, step=step, granted=True, created_at=run.created_at
    )
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.stop_reason
    assert calls == ["start:again", "end:again"]
    assert not ResourceLock.objects.exists()


def test_a_waiting_step_clears_the_locks_of_a_run_whose_worker_stopped(
    locked_tools: None, key: str, calls: list[str]
) -> None:
    dead = submit(key, "dead")
    Run.objects.filter(pk=dead.pk).update(
        status="executing", lease_owner="dead:1/x", lease_expires_at=dead.created_at
    )
    ResourceLock.objects.create(
        key="env:production",
        run=dead,
        step=Step.objects.get(run=dead),
        granted=True,
        created_at=dead.created_at,
    )
    waiter = submit(key, "waiter")
    run_execute(run_id=waiter.pk)
    waiter.refresh_from_db()
    assert waiter.status == "succeeded", waiter.stop_reason
    assert calls == ["start:waiter", "end:waiter"]
    dead.refresh_from_db()
    assert dead.lease_owner == ""  # fenced out, as recovery does, before its locks went
    assert not ResourceLock.objects.exists()


def test_recovery_releases_the_locks_of_a_run_whose_worker_died(
    locked_tools: None, key: str, settings: Any
) -> None:
    run = submit(key, "orphan")
    Run.objects.filter(pk=run.pk).update(status="executing", lease_owner="dead:1/x")
    ResourceLock.objects.create(
        key="env:production",
        run=run,
        step=Step.objects.get(run=run),
        granted=True,
        created_at=run.created_at,
    )
    DBTaskResult.objects.all().delete()  # its task is lost too (else recovery leaves it be)
    assert runs_recover() == [run.pk]
    assert not ResourceLock.objects.exists()


def test_a_lock_key_that_cannot_be_rendered_fails_its_step(
    locked_tools: None, key: str, calls: list[str]
) -> None:
    run = run_submit_plan(
        title="t",
        document={
            "steps": [
                {
                    "id": "deploy",
                    "action": "hold",
                    "params": {"key": key, "label": "x", "target": {"nested": 1}},
                    "locks": ["env:{{ params.target }}"],
                }
            ]
        },
        submitted_by=None,
    )
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    step = Step.objects.get(run=run)
    assert "is not a plain value" in step.error
    assert calls == []


def test_a_rollback_step_waits_for_the_lock_another_run_holds_before_it_undoes(
    locked_tools: None,
    key: str,
    calls: list[str],
    threads: list[threading.Thread],
    make_tool: Callable[..., Tool],
) -> None:
    make_tool("record", "record")
    make_tool("fail", "fail")
    holder = submit(key, "holder", gate="go")
    execute_in_thread(holder, threads)
    wait_until(lambda: holding(holder), "the holder to hold env:production")
    undo = {
        "action": "deploy",
        "params": {"key": key, "label": "undo", "environment": "production"},
    }
    failing = run_submit_plan(
        title="fails, then undoes under the lock",
        document={
            "steps": [
                {
                    "id": "prep",
                    "action": "record",
                    "params": {"key": key, "label": "prep"},
                    "undo": undo,
                },
                {
                    "id": "boom",
                    "action": "fail",
                    "params": {"key": key, "label": "boom"},
                    "depends_on": ["prep"],
                },
            ]
        },
        submitted_by=None,
    )
    execute_in_thread(failing, threads)
    wait_until(lambda: waiting(failing), "the undo to queue for env:production")
    assert Step.objects.get(run=failing, key="undo-prep").status == "pending"
    toolbox.open_gate_now(key, "go")
    wait_until(ended(holder, failing), "both runs to end")
    failing.refresh_from_db()
    assert failing.status == "rolled_back", failing.stop_reason
    starts = [c for c in calls if c.startswith(("start:", "end:"))]
    assert starts == ["start:holder", "end:holder", "start:undo", "end:undo"]
    assert Step.objects.get(run=failing, key="prep").status == "rolled_back"
    assert not ResourceLock.objects.exists()
