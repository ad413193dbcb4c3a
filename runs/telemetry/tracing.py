"""OpenTelemetry spans named and attributed by the GenAI semantic conventions.

Off by default. The standard environment variables turn it on (``OTEL_TRACES_EXPORTER=otlp``
or an ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``; ``OTEL_SDK_DISABLED=true`` keeps it off) and
configure the OTLP exporter, sampler and resource. Spans leave through a
``BatchSpanProcessor``: its thread exports; a run only appends to a bounded queue (spans
are dropped, never waited for, when the collector is down). Step spans, the many, are
noted as tuples and made and exported in an exporter process (``step_spans``). While off
every helper here costs a context-variable set at most.

Every execution of a run (planning, each claim, each resume) is a ``invoke_workflow`` span
in one trace, whose id the run keeps (``Run.trace_id``).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from runs.telemetry.context import RUN_ID, STEP
from runs.telemetry.step_spans import InlineSink, ProcessSink, service_resource

CHAT_FIELDS = ("provider", "model", "purpose", "tokens_in", "tokens_out", "latency_ms", "error")
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic"}  # gen_ai.provider.name values
_PROPAGATOR = TraceContextTextMapPropagator()
# The trace a new root span joins: the run's stored trace id (see _RunTraceIds).
_JOIN_TRACE: ContextVar[int | None] = ContextVar("telemetry_join_trace", default=None)
# The step span the code runs in: (trace id, span id, trace flags); see step_span.
# The run span the code runs in, as (trace id, span id, trace flags): read by every step span.
_RUN_SPAN: ContextVar[tuple[int, int, int] | None] = ContextVar("telemetry_run_span", default=None)
_STEP_SPAN: ContextVar[tuple[int, int, int] | None] = ContextVar(
    "telemetry_step_span", default=None
)
_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
_steps: InlineSink | ProcessSink | None = None


class _RunTraceIds(RandomIdGenerator):
    """Random ids, except that a run's later executions reuse the run's trace id."""

    def generate_trace_id(self) -> int:
        wanted = _JOIN_TRACE.get()
        return wanted if wanted is not None else super().generate_trace_id()


def wanted_from_env(env: dict[str, str] | None = None) -> bool:
    """Do the standard OpenTelemetry variables ask for trace export?"""
    env = dict(os.environ) if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def setup_from_env() -> None:
    """Export spans over OTLP (HTTP) when the environment asks for it; else stay off."""
    if _tracer is not None or not wanted_from_env():
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # The BatchSpanProcessors (here and in the step spans' exporter process) read OTEL_BSP_*.
    configure(BatchSpanProcessor(OTLPSpanExporter()), steps_elsewhere=True)


def configure(
    processor: SpanProcessor | SpanExporter | None, *, steps_elsewhere: bool = False
) -> TracerProvider | None:
    """Trace into ``processor`` (an exporter is batched), or turn tracing off with None.

    ``steps_elsewhere``: step spans go to an exporter process configured by the ``OTEL_*``
    variables (see ``step_spans``) instead of into ``processor``.
    """
    global _tracer, _provider, _steps
    if _steps is not None:
        _steps.shutdown()
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = _steps = None
    if processor is None:
        return None
    if isinstance(processor, SpanExporter):
        processor = BatchSpanProcessor(processor)
    resource = service_resource()
    _provider = TracerProvider(resource=resource, id_generator=_RunTraceIds())
    _provider.add_span_processor(processor)
    _tracer = _provider.get_tracer("plannerweb")
    _steps = (
        ProcessSink(**_batch_settings()) if steps_elsewhere else InlineSink(processor, resource)
    )
    return _provider


def _batch_settings() -> dict[str, Any]:
    """The step spans' queue, batch and delay, from the SDK's own ``OTEL_BSP_*`` variables."""
    env = os.environ
    return {
        "max_queue": int(env.get("OTEL_BSP_MAX_QUEUE_SIZE") or 2048),
        "batch": int(env.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") or 512),
        "delay_seconds": int(env.get("OTEL_BSP_SCHEDULE_DELAY") or 5000) / 1000,
    }


def enabled() -> bool:
    return _tracer is not None


@contextmanager
def run_span(run_id: int, trace_id: str, *, phase: str) -> Iterator[str]:
    """One execution of a run (``invoke_workflow``); yields the run's trace id ('' when off).

    ``trace_id``: the id the run keeps ('' for its first traced execution).
    """
    run_token = RUN_ID.set(run_id)
    try:
        if _tracer is None:
            yield trace_id
            return
        join = _JOIN_TRACE.set(int(trace_id, 16) if trace_id else None)
        detached = otel_context.attach(otel_context.Context())  # a root span: no parent
        try:
            span = _tracer.start_span(
                f"invoke_workflow run {run_id}",
                attributes={
                    "gen_ai.operation.name": "invoke_workflow",
                    "plannerweb.run.id": run_id,
                    "plannerweb.run.phase": phase,
                },
            )
        finally:
            otel_context.detach(detached)
            _JOIN_TRACE.reset(join)
        with trace.use_span(span, end_on_exit=True):
            made = span.get_span_context()
            inside = _RUN_SPAN.set((made.trace_id, made.span_id, int(made.trace_flags)))
            try:
                yield format(made.trace_id, "032x")
            finally:
                _RUN_SPAN.reset(inside)
    finally:
        RUN_ID.reset(run_token)


class step_span:
    """One attempt of a step's tool (``execute_tool``); log lines inside name the step.

    A class, not a generator: the executor enters it for every attempt, so off it costs
    two context-variable sets; on, a few more and a tuple for the sink (``step_spans``),
    in a trace only when its run's span is sampled.
    """

    __slots__ = ("_parent", "_span", "_start", "_step", "attempt", "step", "tool")

    def __init__(self, tool: str, step: str, attempt: int) -> None:
        self.tool, self.step, self.attempt = tool, step, attempt
        self._span: Any = None

    def __enter__(self) -> None:
        self._step = STEP.set(self.step)
        if _steps is None:
            return
        trace_id, self._parent, flags = _RUN_SPAN.get() or _parent()
        if not flags & 1:  # the run's trace is not sampled
            return
        self._span = _STEP_SPAN.set((trace_id, random.getrandbits(64) or 1, flags))
        self._start = time.time_ns()

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        STEP.reset(self._step)
        token = self._span
        if token is None:
            return
        end = time.time_ns()
        trace_id, span_id, flags = _STEP_SPAN.get()  # type: ignore[misc]
        _STEP_SPAN.reset(token)
        error = f"{type(exc).__name__}: {exc}"[:200] if exc is not None else ""
        sink = _steps
        if sink is not None:
            record = (trace_id, self._parent, flags, span_id, self._start, end)
            sink.record((*record, self.tool, self.step, self.attempt, RUN_ID.get(), error))


@contextmanager
def step_span_current() -> Iterator[None]:
    """Within the block, OpenTelemetry-instrumented libraries see the step span as current.

    The MCP SDK injects the current span into a call's ``_meta`` (``traceparent``); the
    executor does not make step spans current by itself (it costs a context attach).
    """
    context = _in_step_span()
    if context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def _parent() -> tuple[int, int, int]:
    """(trace id, parent span id, flags) for a step outside a run's span: the current span's,
    else a new trace (sampled, as the default sampler does) with no parent."""
    parent = trace.get_current_span().get_span_context()
    if parent.is_valid:
        return parent.trace_id, parent.span_id, int(parent.trace_flags)
    return random.getrandbits(128) or 1, 0, TraceFlags.SAMPLED


def _in_step_span() -> Any:
    """The OpenTelemetry context naming the current step span as parent; None outside one."""
    step = _STEP_SPAN.get()
    if step is None:
        return None
    trace_id, span_id, flags = step
    span = NonRecordingSpan(SpanContext(trace_id, span_id, False, TraceFlags(flags)))
    return trace.set_span_in_context(span)


def chat_done(
    *,
    provider: str,
    model: str,
    purpose: str,
    tokens_in: int,
    tokens_out: int,
    latency_ms: int,
    error: str = "",
) -> None:
    """A planner's model call that just returned (``chat``), timed back from now."""
    if _tracer is None:
        return
    end = time.time_ns()
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": PROVIDER_NAMES.get(provider, provider),
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": tokens_in,
        "gen_ai.usage.output_tokens": tokens_out,
        "plannerweb.llm.purpose": purpose,
    }
    if error:
        attributes["error.type"] = "provider_error"
    span = _tracer.start_span(
        f"chat {model}",
        context=_in_step_span(),  # an llm or agent step's model call is the step's child
        attributes=attributes,
        start_time=end - latency_ms * 1_000_000,
    )
    if error:
        span.set_status(trace.StatusCode.ERROR, error[:200])
    span.end(end_time=end)


def review_waited(*, trace_id: str, run_id: int, kind: str, opened: datetime) -> None:
    """A review item decided now, open since ``opened``: a span in the run's trace."""
    if _tracer is None:
        return
    join = _JOIN_TRACE.set(int(trace_id, 16) if trace_id else None)
    detached = otel_context.attach(otel_context.Context())
    try:
        span = _tracer.start_span(
            f"review_wait {kind}",
            attributes={"plannerweb.run.id": run_id, "plannerweb.review.kind": kind},
            start_time=int(opened.timestamp() * 1e9),
        )
    finally:
        otel_context.detach(detached)
        _JOIN_TRACE.reset(join)
    span.end()


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, for a tool call; None when off."""
    if _tracer is None:
        return None
    step = _STEP_SPAN.get()
    if step is not None:
        trace_id, span_id, flags = step
        return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")
