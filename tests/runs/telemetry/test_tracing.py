"""Spans of a run captured with the SDK's in-memory exporter: names, GenAI attributes, the
parent-child links, one trace per run, and the context reaching shell and http tools."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from reviews.models import ApprovalPolicy, ReviewItem
from runs.lifecycle.claim import run_execute
from runs.lifecycle.planning import run_submit_task
from runs.lifecycle.reviews import review_approve
from runs.lifecycle.submit import run_submit_plan
from runs.models import McpServer, Run, RunStatus, Step, Tool
from runs.planning.providers.scripted import ScriptedProvider
from runs.telemetry import tracing
from tests.runs.llmtools.test_agent import agent, done  # noqa: F401
from tests.runs.llmtools.test_agent import execute as execute_agent
from tests.runs.llmtools.test_agent import plan as agent_plan
from tests.runs.planning.conftest import planner_settings, planner_tools  # noqa: F401
from tests.runs.planning.test_planner import scripted
from tests.runs.telemetry.workload import retry_then_shell
from tests.runs.tools.kinds.mcp.conftest import http_server, http_server_url  # noqa: F401
from tests.runs.tools.kinds.test_http import FakeServer, base, server  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(SimpleSpanProcessor(exporter))
    yield exporter
    tracing.configure(None)


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def hexid(value: int, width: int = 32) -> str:
    return format(value, f"0{width}x")


def parent_of(span: ReadableSpan) -> str:
    """The W3C traceparent naming ``span`` as the parent."""
    c = span.context
    return f"00-{hexid(c.trace_id)}-{hexid(c.span_id, 16)}-{int(c.trace_flags):02x}"


def test_a_run_is_a_workflow_span_whose_steps_are_tool_spans_and_the_shell_sees_its_parent(
    spans: InMemorySpanExporter,
    execute: Callable[..., Run],
    make_tool: Callable[..., Tool],
    key: str,
) -> None:
    run = retry_then_shell(execute, make_tool, key)
    (workflow,) = named(spans, "invoke_workflow")
    assert workflow.parent is None and workflow.attributes is not None
    assert workflow.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert workflow.attributes["plannerweb.run.id"] == run.pk
    assert run.trace_id == hexid(workflow.context.trace_id)
    tools = named(spans, "execute_tool")
    assert [
        (s.attributes["gen_ai.tool.name"], s.attributes["plannerweb.step.attempt"]) for s in tools
    ] == [
        ("flaky", 1),
        ("flaky", 2),
        ("echo_tp", 1),
    ]
    assert all(s.parent is not None and s.parent.span_id == workflow.context.span_id for s in tools)
    assert tools[0].status.status_code.name == "ERROR"  # the failed first attempt
    shell = tools[2]
    sent = Step.objects.get(run=run, key="sh").result["tp"]
    assert sent == parent_of(shell)


def test_an_http_tool_gets_a_traceparent_header_from_its_step_span(
    spans: InMemorySpanExporter,
    execute: Callable[..., Run],
    make_tool: Callable[..., Tool],
    base: str,  # noqa: F811
    server: FakeServer,  # noqa: F811
) -> None:
    make_tool("ping", "record", kind=Tool.Kind.HTTP, config={"url": base + "/ping"})
    run = execute({"steps": [{"id": "p", "action": "ping"}]})
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    (span,) = named(spans, "execute_tool ping")
    header = {k.lower(): v for k, v in server.requests[0]["headers"].items()}["traceparent"]
    assert header == parent_of(span)


def test_an_mcp_call_carries_the_step_span_as_traceparent_in_its_meta(
    spans: InMemorySpanExporter,
    execute: Callable[..., Run],
    http_server: McpServer,  # noqa: F811
) -> None:
    call_command("tools_import", "--mcp", http_server.name, stdout=io.StringIO())
    run = execute({"steps": [{"id": "m", "tool": "remote-request_meta"}]})
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    (span,) = named(spans, "execute_tool remote-request_meta")
    meta = Step.objects.get(run=run, key="m").result
    assert meta["traceparent"] == parent_of(span)
    assert meta["idempotencyKey"]  # the key is still sent beside it


def test_an_agent_steps_model_calls_are_chat_spans_under_its_step_span(
    spans: InMemorySpanExporter,
    agent: Callable[..., ScriptedProvider],  # noqa: F811
) -> None:
    agent(done({"answer": 42}))
    run = execute_agent(agent_plan([]))
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    (step,) = named(spans, "execute_tool agent")
    (chat,) = named(spans, "chat")
    assert chat.parent is not None and chat.parent.span_id == step.context.span_id
    assert chat.context.trace_id == step.context.trace_id


def test_planning_and_execution_share_the_run_trace_and_model_calls_are_chat_spans(
    spans: InMemorySpanExporter,
    planner_tools: Any,  # noqa: F811
    planner_settings: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    operator: User,
) -> None:
    key = uuid.uuid4().hex
    step = {"id": "a", "action": "record", "params": {"key": key, "label": "a"}}
    scripted(monkeypatch, "openai", {"goal": "g", "steps": [step]})
    run = run_submit_task(title="traced", submitted_by=operator, planner="openai")
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    run.refresh_from_db()
    plan_span, exec_span = sorted(named(spans, "invoke_workflow"), key=lambda s: s.start_time or 0)
    assert plan_span.attributes["plannerweb.run.phase"] == "plan"
    assert exec_span.attributes["plannerweb.run.phase"] == "execute"
    assert plan_span.context.trace_id == exec_span.context.trace_id
    assert hexid(plan_span.context.trace_id) == run.trace_id
    (chat,) = named(spans, "chat")
    assert chat.parent is not None and chat.parent.span_id == plan_span.context.span_id
    attrs = dict(chat.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "scripted-1"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    (tool,) = named(spans, "execute_tool")
    assert tool.parent is not None and tool.parent.span_id == exec_span.context.span_id


def test_a_run_succeeds_while_the_collector_is_down(execute: Callable[..., Run], key: str) -> None:
    # Nothing listens on this port; the batch processor's thread fails, the run does not wait.
    dead = OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces", timeout=1)
    tracing.configure(BatchSpanProcessor(dead, schedule_delay_millis=10))
    try:
        plan = {"steps": [{"id": "a", "action": "record", "params": {"key": key, "label": "a"}}]}
        run = execute(plan)
        assert run.status == RunStatus.SUCCEEDED and len(run.trace_id) == 32
    finally:
        tracing.configure(None)


def test_tracing_is_off_by_default_and_configured_only_by_otel_variables() -> None:
    assert not tracing.enabled()
    assert not tracing.wanted_from_env({})
    assert tracing.wanted_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted_from_env({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not tracing.wanted_from_env(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    )
    assert not tracing.wanted_from_env(
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    )
    assert tracing.traceparent() is None


def test_the_run_page_shows_the_trace_id(
    spans: InMemorySpanExporter, execute: Callable[..., Run], key: str, operator: User
) -> None:
    run = execute(
        {"steps": [{"id": "a", "action": "record", "params": {"key": key, "label": "a"}}]}
    )
    client = Client()
    client.force_login(operator)
    page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert f"<code data-trace-id>{run.trace_id}</code>" in page and len(run.trace_id) == 32


def test_a_review_wait_is_a_span_from_opening_to_decision(
    spans: InMemorySpanExporter,
    execute: Callable[..., Run],
    operator: User,
    reviewer: User,
    key: str,
) -> None:
    ApprovalPolicy.objects.create(mode="always")
    document = {"steps": [{"id": "a", "action": "record", "params": {"key": key, "label": "a"}}]}
    run = run_submit_plan(title="gated", document=document, submitted_by=operator)
    item = ReviewItem.objects.get(run=run, kind="plan_approval")
    review_approve(item_id=item.pk, user=reviewer, checklist=range(len(item.checklist)))
    (wait,) = named(spans, "review_wait")
    assert wait.name == "review_wait plan_approval" and wait.attributes is not None
    assert wait.attributes["plannerweb.run.id"] == run.pk
    assert wait.start_time == int(item.created_at.timestamp() * 1e9) < (wait.end_time or 0)
