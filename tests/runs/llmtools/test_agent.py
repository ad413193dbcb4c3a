"""Agent steps: a scripted model calling tools from its list in a bounded, durable loop."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from reviews.models import ReviewItem, ReviewKind
from runs.lifecycle.cancel import run_cancel
from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import AgentCall, LlmCall, Run, RunStatus, Step, Tool, TranscriptEvent
from runs.planning.providers import FACTORIES
from runs.planning.providers.scripted import ScriptedProvider
from tests.runs import toolbox

pytestmark = pytest.mark.django_db(transaction=True)


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"thought": f"call {tool}", "tool": tool, "arguments": arguments, "done": False}


def done(answer: Any) -> dict[str, Any]:
    return {"thought": "finished", "tool": None, "arguments": None, "done": True, "answer": answer}


@pytest.fixture
def agent(
    make_tool: Callable[..., Tool], fast_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., ScriptedProvider]:
    """An ``agent`` tool on a scripted model (swapped in as ``openai``); returns the model."""
    fast_settings.PLANNERWEB_PLANNER = "openai"
    make_tool("record", "record")
    make_tool("hang", "hang")
    make_tool("deploy", "record", sensitive=True)

    def start(*script: Any, **config: Any) -> ScriptedProvider:
        Tool.objects.create(
            name="agent",
            kind=Tool.Kind.AGENT,
            config=config,
            parameters_schema={"type": "object"},
            timeout_seconds=30,
        )
        model = ScriptedProvider(script)
        model.name = "openai"
        monkeypatch.setitem(FACTORIES, "openai", lambda **_: model)
        return model

    return start


def plan(tools: list[str], instruction: str = "record a and b, then say done") -> dict[str, Any]:
    params = {"instruction": instruction, "tools": tools}
    return {"steps": [{"id": "work", "action": "agent", "params": params}]}


def submit(document: dict[str, Any]) -> Run:
    run = run_submit_plan(title="t", document=document, submitted_by=None)
    assert run.status == RunStatus.QUEUED, run.stop_reason
    return run


def execute(document: dict[str, Any]) -> Run:
    run = submit(document)
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_an_agent_calls_its_tools_and_its_answer_is_the_step_result(
    agent: Callable[..., ScriptedProvider], key: str
) -> None:
    model = agent(
        call("record", key=key, label="a"),
        call("record", key=key, label="b"),
        done({"recorded": ["a", "b"]}),
    )
    run = execute(plan(["record"]))
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    assert toolbox.CALLS[key] == ["a", "b"]
    assert Step.objects.get(run=run).result == {"recorded": ["a", "b"]}
    rows = list(AgentCall.objects.filter(run=run))
    assert [(r.index, r.tool, r.status) for r in rows] == [
        (0, "record", "succeeded"),
        (1, "record", "succeeded"),
    ]
    assert rows[0].result["label"] == "a"
    # The model saw each result before deciding the next call.
    assert '"label": "a"' in model.requests[1].messages[-1]["content"]
    assert [c.purpose for c in LlmCall.objects.filter(run=run)] == ["agent"] * 3
    nested = TranscriptEvent.objects.filter(run=run, kind="agent.tool_call").order_by("seq")
    assert [(e.payload["step"], e.payload["status"]) for e in nested] == [
        ("work", "started"),
        ("work", "succeeded"),
        ("work", "started"),
        ("work", "succeeded"),
    ]


def test_a_tool_outside_the_list_or_sensitive_is_refused_recorded_and_never_called(
    agent: Callable[..., ScriptedProvider], key: str
) -> None:
    model = agent(
        call("hang", key=key, label="x"),
        call("deploy", key=key, label="prod"),
        done("gave up on those"),
    )
    run = execute(plan(["record", "deploy"]))
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    assert toolbox.CALLS[key] == []
    rows = list(AgentCall.objects.filter(run=run))
    assert [(r.tool, r.status) for r in rows] == [("hang", "refused"), ("deploy", "refused")]
    assert "'hang' is not in your list of tools" in rows[0].error
    assert "sensitive" in rows[1].error
    assert model.requests[1].messages[-1]["content"].startswith("Refused: 'hang' is not in")


def test_a_runaway_agent_stops_at_its_iterations_and_at_its_token_budget(
    agent: Callable[..., ScriptedProvider], key: str
) -> None:
    agent(*[call("record", key=key, label=str(i)) for i in range(10)], max_iterations=3)
    run = execute(plan(["record"]))
    step = Step.objects.get(run=run)
    assert step.status == "failed" and "3 model calls (max_iterations)" in step.error
    assert toolbox.CALLS[key] == ["0", "1", "2"]
    Tool.objects.filter(name="agent").delete()
    agent(*[call("record", key=key, label=f"t{i}") for i in range(10)], max_tokens=300)
    run = execute(plan(["record"]))
    step = Step.objects.get(run=run)
    assert step.status == "failed" and "spent its token budget" in step.error
    assert 1 <= len([c for c in toolbox.CALLS[key] if c.startswith("t")]) < 10


def test_a_step_run_again_replays_finished_calls_and_refuses_a_half_done_one(
    agent: Callable[..., ScriptedProvider], key: str
) -> None:
    """What a takeover sees: the rows a killed worker left (one done, one caught mid-call)."""
    model = agent(call("record", key=key, label="c"), done("all three"))
    run = submit(plan(["record"]))
    step = Step.objects.get(run=run)
    ikey = str(step.idempotency_key)
    AgentCall.objects.create(
        run=run,
        step_key="work",
        idempotency_key=ikey,
        index=0,
        decision='{"tool": "record"}',
        tool="record",
        params={"key": key, "label": "a"},
        status="succeeded",
        result={"label": "a"},
    )
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    assert toolbox.CALLS[key] == ["c"]  # "a" was not called again
    assert model.requests[0].messages[1]["content"] == '{"tool": "record"}'
    assert model.requests[0].messages[2]["content"] == 'Result: {"label": "a"}'

    Tool.objects.filter(name="agent").delete()
    agent(done("never asked"))
    run = submit(plan(["record"]))
    ikey = str(Step.objects.get(run=run).idempotency_key)
    AgentCall.objects.create(
        run=run,
        step_key="work",
        idempotency_key=ikey,
        index=0,
        decision="{}",
        tool="record",
        params={"key": key, "label": "half"},
        status="started",
    )
    run_execute(run_id=run.pk)
    step = Step.objects.get(run=run)
    assert step.status == "failed"
    assert "caught mid-flight and the tool is not idempotent" in step.error
    assert "half" not in toolbox.CALLS[key]


def test_cancel_stops_an_agent_inside_its_tool_call(
    agent: Callable[..., ScriptedProvider], key: str, operator: Any
) -> None:
    agent(call("hang", key=key, label="h"), done("unreachable"))
    run = submit(plan(["hang"]))

    def work() -> None:
        from django.db import connection

        try:
            run_execute(run_id=run.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while "h" not in toolbox.CALLS[key] and time.monotonic() < deadline:
        time.sleep(0.02)
    run_cancel(run_id=run.pk, user=operator)
    thread.join(timeout=20)
    assert not thread.is_alive()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert toolbox.CALLS[key] == ["h", "h:cancelled"]
    (row,) = AgentCall.objects.filter(run=run)
    assert row.status == "started"  # caught mid-call: a takeover would not repeat it blindly


def test_secrets_in_an_agents_calls_are_stored_redacted(
    agent: Callable[..., ScriptedProvider], key: str
) -> None:
    secret = "sk-proj-" + "S" * 40
    agent(call("record", key=key, label="s", value=secret), done(f"stored {secret}"))
    run = execute(plan(["record"]))
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    (row,) = AgentCall.objects.filter(run=run)
    events = TranscriptEvent.objects.filter(run=run, kind__in=["agent.tool_call", "planner.call"])
    stored = json.dumps([row.params, row.result, row.decision, Step.objects.get(run=run).result])
    stored += json.dumps([e.payload for e in events])
    assert secret not in stored
    assert "[REDACTED:openai_key" in row.params["value"]


def test_the_run_page_lists_an_agent_steps_inner_calls_under_the_step(
    agent: Callable[..., ScriptedProvider], key: str, operator: Any
) -> None:
    agent(call("record", key=key, label="a"), call("hang", key=key, label="x"), done("ok"))
    run = execute(plan(["record"]))
    client = Client()
    client.force_login(operator)
    html = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "agent calls (2)" in html
    assert "<li><code>record</code> succeeded</li>" in html
    assert "<code>hang</code> refused: " in html


def test_approval_policies_and_confidence_gates_apply_to_a_sensitive_agent_step(
    agent: Callable[..., ScriptedProvider], key: str, fast_settings: Any
) -> None:
    model = agent(call("record", key=key, label="a"), done("ok"))
    Tool.objects.filter(name="agent").update(sensitive=True)
    fast_settings.PLANNERWEB_APPROVAL_MODE = "sensitive"
    document = plan(["record"])
    run = run_submit_plan(title="t", document=document, submitted_by=None)
    assert run.status == RunStatus.AWAITING_APPROVAL
    item = ReviewItem.objects.get(run=run, kind=ReviewKind.PLAN_APPROVAL)
    assert "sensitive tool 'agent'" in item.reason_opened

    fast_settings.PLANNERWEB_APPROVAL_MODE = "never"
    document["steps"][0]["confidence"] = 0.2
    run = execute(document)
    assert run.status == RunStatus.AWAITING_APPROVAL  # parked at the step's gate
    gate = ReviewItem.objects.get(run=run, kind=ReviewKind.STEP_GATE)
    assert gate.step is not None and gate.step.key == "work"
    assert model.requests == [] and toolbox.CALLS[key] == []  # nothing ran before a reviewer
