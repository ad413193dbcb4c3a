"""Executor pools in one process: steps of a queued tool go to the workers of that queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from reviews.models import EscalationCause, ReviewItem
from runs.events import event_summary
from runs.lifecycle.cancel import run_cancel
from runs.lifecycle.claim import run_execute
from runs.lifecycle.pool_worker import PoolServer
from runs.lifecycle.submit import run_submit_plan
from runs.models import RemoteStep, Run, Step, Tool, TranscriptEvent
from runs.pools import queues_overview, remote_step_claim, step_pool_state

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pool_settings(fast_settings: Any) -> Any:
    fast_settings.PLANNERWEB_POOL_POLL_SECONDS = 0.02
    return fast_settings


@pytest.fixture
def pool_tools(make_tool: Callable[..., Tool]) -> None:
    make_tool("sql_record", "record", queue="sql")
    make_tool("email_record", "record", queue="email")
    make_tool("gpu_record", "record", queue="gpu")
    make_tool("sql_slow", "record_slow", queue="sql", idempotent=False)
    make_tool("sql_slow_idem", "record_slow", queue="sql", idempotent=True)


@contextmanager
def pool(worker_id: str, *queues: str) -> Iterator[PoolServer]:
    server = PoolServer(worker_id=worker_id, queues=list(queues), threads=2)
    server.start()
    try:
        yield server
    finally:
        server.stop(5)


def submit(document: dict[str, Any]) -> Run:
    run = run_submit_plan(title="pools", document=document, submitted_by=None, max_parallel=4)
    assert run.status == "queued", run.stop_reason
    return run


def step(key: str, tool: str, calls_key: str, *deps: str, **params: Any) -> dict[str, Any]:
    return {
        "id": key,
        "action": tool,
        "params": {"key": calls_key, "label": key, **params},
        "depends_on": list(deps),
    }


def summaries(run: Run, kind: str) -> list[str]:
    rows = TranscriptEvent.objects.filter(run=run, kind=kind).order_by("seq")
    return [event_summary(kind, e.payload) for e in rows]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_each_queued_step_runs_on_a_worker_of_its_queue_and_the_rest_on_the_owner(
    pool_settings: Any, toolset: None, pool_tools: None, key: str, calls: list[str]
) -> None:
    run = submit(
        {
            "steps": [
                step("a", "sql_record", key),
                step("b", "record", key, "a"),
                step("c", "email_record", key, "a"),
                step("d", "sql_record", key, "b", "c"),
            ]
        }
    )
    with pool("w-sql", "sql"), pool("w-email", "email"):
        assert run_execute(run_id=run.pk) == "succeeded"
    assert sorted(calls) == ["a", "b", "c", "d"]
    workers = dict(RemoteStep.objects.filter(run=run).values_list("step__key", "worker_id"))
    assert workers == {"a": "w-sql", "c": "w-email", "d": "w-sql"}
    assert summaries(run, "step.claimed") == [
        "a running on worker w-sql (queue sql)",
        "c running on worker w-email (queue email)",
        "d running on worker w-sql (queue sql)",
    ]
    seqs = list(TranscriptEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    results = dict(Step.objects.filter(run=run).values_list("key", "result"))
    assert results["d"]["label"] == "d"


def test_a_step_whose_queue_has_no_live_worker_says_so_and_cancel_stops_it(
    pool_settings: Any, toolset: None, pool_tools: None, key: str, calls: list[str]
) -> None:
    run = submit({"steps": [step("a", "gpu_record", key), step("b", "record", key)]})
    with pool("w-sql", "sql"):  # a live worker, of another queue
        owner = threading.Thread(target=run_execute, kwargs={"run_id": run.pk})
        owner.start()
        try:
            wait_until(lambda: RemoteStep.objects.filter(run=run).exists(), "the queued step")
            wait_until(
                lambda: Step.objects.filter(run=run, key="b", status="succeeded").exists(),
                "the owner's own step",
            )
            a = Step.objects.get(run=run, key="a")
            assert a.status == "running"
            waiting = step_pool_state([a.pk])[a.pk]["waiting"]
            assert waiting == "waiting for a worker on queue gpu (no live worker serves it)"
            assert summaries(run, "step.queued") == [
                "a waiting for a worker on queue gpu (no live worker serves it)"
            ]
            gpu = next(q for q in queues_overview() if q.name == "gpu")
            assert (gpu.pending, gpu.running, gpu.workers) == (1, 0, [])
            sql = next(q for q in queues_overview() if q.name == "sql")
            assert sql.workers == ["w-sql"]
            run_cancel(run_id=run.pk, user=None, reason="no gpu today")
        finally:
            owner.join(20)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert RemoteStep.objects.get(run=run).status == "cancelled"
    assert calls == ["b"]
    assert Step.objects.get(run=run, key="a").status == "cancelled"


def lose_the_first_pool_worker(run: Run) -> None:
    """Execute ``run`` while a pool worker takes its step and dies at once (it never calls
    the tool, never renews), and another worker of the queue serves; then reload it."""
    owner = threading.Thread(target=run_execute, kwargs={"run_id": run.pk})
    owner.start()
    try:
        wait_until(lambda: RemoteStep.objects.filter(run=run).exists(), "the queued step")
        assert remote_step_claim(queues=["sql"], worker_id="w-dead") is not None
        with pool("w-live", "sql"):
            owner.join(20)
    finally:
        owner.join(20)
    run.refresh_from_db()


def test_a_pool_worker_lost_mid_step_reruns_an_idempotent_step_on_another_worker(
    pool_settings: Any, toolset: None, pool_tools: None, key: str, calls: list[str]
) -> None:
    run = submit({"steps": [step("a", "sql_slow_idem", key, seconds=0.01)]})
    lose_the_first_pool_worker(run)
    assert run.status == "succeeded"
    assert calls == ["a"]
    assert summaries(run, "step.claimed") == [
        "a running on worker w-dead (queue sql)",
        "a running on worker w-live (queue sql)",
    ]
    row = RemoteStep.objects.get(run=run)
    assert (row.worker_id, row.attempt) == ("w-live", 2)


def test_a_pool_worker_lost_mid_step_escalates_a_step_that_may_have_partly_run(
    pool_settings: Any, toolset: None, pool_tools: None, key: str, calls: list[str]
) -> None:
    run = submit({"steps": [step("a", "sql_slow", key, seconds=0.01)]})
    lose_the_first_pool_worker(run)
    assert run.status == "escalated"
    assert calls == []  # nobody called it again
    item = ReviewItem.objects.get(run=run)
    assert item.cause == EscalationCause.PARTIAL_RUN
    assert "w-dead stopped while it was running" in Step.objects.get(run=run, key="a").error


def test_the_tools_page_and_api_show_each_tools_queue_and_refuse_a_bad_one(
    pool_tools: None, admin_user: Any, client: Any
) -> None:
    client.force_login(admin_user)
    assert "queue sql" in client.get("/tools/").content.decode()
    assert client.get("/api/tools/sql_record").json()["queue"] == "sql"
    bad = client.patch(
        "/api/tools/sql_record", {"queue": "notifications"}, content_type="application/json"
    )
    assert bad.status_code == 422
    assert "task queue" in bad.json()["fields"][0]["message"]
    assert Tool.objects.get(name="sql_record").queue == "sql"
    ok = client.patch("/api/tools/sql_record", {"queue": ""}, content_type="application/json")
    assert ok.status_code == 200 and Tool.objects.get(name="sql_record").queue == ""


def test_tools_yaml_carries_the_queue_both_ways_and_refuses_a_bad_one(
    transactional_db: None,
) -> None:
    from runs.tools.yaml_io import ToolsYamlError, tools_import, tools_to_yaml

    text = """
tools:
  - name: report_sql
    script: {python: tests.runs.toolbox.record}
    queue: sql
"""
    tools_import(text=text)
    assert Tool.objects.get(name="report_sql").queue == "sql"
    assert "queue: sql" in tools_to_yaml(Tool.objects.all())
    with pytest.raises(
        ToolsYamlError, match=r"tools\[0\] \(report_sql\)\.queue: 'SQL pool' is not a queue name"
    ):
        tools_import(text=text.replace("queue: sql", "queue: SQL pool"))
    assert Tool.objects.get(name="report_sql").queue == "sql"
