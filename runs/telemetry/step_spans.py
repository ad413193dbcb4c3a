"""Step spans (``execute_tool``) recorded as plain tuples and turned into SDK spans elsewhere.

A step can take well under 100 µs of the executor's time, while an SDK span costs about
25 µs to make and 35 µs more to encode for OTLP. So the executor only notes a tuple of
numbers and names (a couple of µs); a sink turns it into a ``ReadableSpan``:

- ``InlineSink`` at once, into a span processor of this process (tests, the in-memory
  exporter);
- ``ProcessSink`` in an exporter process of its own (``python -m
  runs.telemetry.span_exporter``, configured by the same ``OTEL_*`` variables), to which a
  thread ships pickled batches through a pipe. The run's process never encodes a step span;
  the exporter process exits when the pipe closes, so it never outlives its worker.

Standard library and OpenTelemetry only: the exporter process imports no Django.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

log = logging.getLogger(__name__)

# (trace_id, parent_span_id or 0, trace_flags, span_id, start_ns, end_ns,
#  tool, step key, attempt, run id or None, error text or '')
Record = tuple[int, int, int, int, int, int, str, str, int, "int | None", str]

SCOPE = InstrumentationScope("plannerweb")
_HEADER = struct.Struct("!I")  # the length of each pickled batch on the pipe
_UNSET = Status(StatusCode.UNSET)


def service_resource() -> Resource:
    """The resource every span of this deployment carries (``OTEL_SERVICE_NAME``)."""
    return Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "plannerweb")})


def readable(record: Record, resource: Resource) -> ReadableSpan:
    """The SDK span a step's record stands for (names and attributes as GenAI conventions say)."""
    trace_id, parent_id, flags, span_id, start, end, tool, step, attempt, run_id, error = record
    trace_flags = TraceFlags(flags)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "gen_ai.tool.call.id": f"{run_id}/{step}/{attempt}",
        "plannerweb.step.key": step,
        "plannerweb.step.attempt": attempt,
    }
    return ReadableSpan(
        name=f"execute_tool {tool}",
        context=SpanContext(trace_id, span_id, False, trace_flags),
        parent=SpanContext(trace_id, parent_id, False, trace_flags) if parent_id else None,
        resource=resource,
        attributes=attributes,
        status=Status(StatusCode.ERROR, error) if error else _UNSET,
        start_time=start,
        end_time=end,
        instrumentation_scope=SCOPE,
    )


class InlineSink:
    """Each record becomes a span of ``processor`` right away, on the caller's thread."""

    def __init__(self, processor: SpanProcessor, resource: Resource) -> None:
        self.processor, self.resource = processor, resource

    def record(self, record: Record) -> None:
        self.processor.on_end(readable(record, self.resource))

    def shutdown(self) -> None:
        pass  # the processor belongs to the tracer provider, which shuts it down


class ProcessSink:
    """Records shipped in batches to an exporter process; see the module docstring.

    ``record`` appends to a bounded deque (records beyond ``max_queue`` are dropped and
    counted, like the SDK's batch processor drops spans): a run never waits for the exporter.
    The process and the shipping thread start with the first record.
    """

    def __init__(
        self, *, max_queue: int = 2048, batch: int = 512, delay_seconds: float = 5.0
    ) -> None:
        self.max_queue, self.batch, self.delay_seconds = max_queue, batch, delay_seconds
        self.dropped = 0
        self._queue: deque[Record] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._closing = False
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def record(self, record: Record) -> None:
        queue = self._queue
        if len(queue) >= self.max_queue or self._closing:
            self.dropped += 1
            return
        queue.append(record)
        if self._thread is None:
            self._start()
        elif len(queue) == self.batch:
            self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closing:
                return
            root = Path(__file__).resolve().parents[2]
            self._process = subprocess.Popen(
                [sys.executable, "-m", "runs.telemetry.span_exporter"],
                stdin=subprocess.PIPE,
                cwd=root,
            )
            self._thread = threading.Thread(target=self._ship, name="step-spans", daemon=True)
            self._thread.start()
            atexit.register(self.shutdown)

    def _ship(self) -> None:
        assert self._process is not None and self._process.stdin is not None
        pipe = self._process.stdin
        while not self._closing:
            self._wake.wait(self.delay_seconds)
            self._wake.clear()
            if not self._send(pipe):
                return
        self._send(pipe)

    def _send(self, pipe: IO[bytes]) -> bool:
        """Ship what is queued; False once the exporter process is gone (then drop)."""
        queue = self._queue
        while queue:
            batch = [queue.popleft() for _ in range(min(len(queue), self.batch))]
            data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
            try:
                pipe.write(_HEADER.pack(len(data)) + data)
                pipe.flush()
            except (BrokenPipeError, OSError, ValueError):
                log.warning("the span exporter process has gone; step spans are dropped")
                self._closing = True
                return False
        return True

    def shutdown(self, timeout: float = 30.0) -> None:
        """Ship what is left, close the pipe and let the exporter flush and exit."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None


def read_batches(stream: IO[bytes]) -> Any:
    """The batches a ``ProcessSink`` wrote, until the pipe closes."""
    while True:
        head = stream.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return
        (size,) = _HEADER.unpack(head)
        data = stream.read(size)
        if len(data) < size:
            return
        yield pickle.loads(data)  # our own process wrote it, through a pipe of its own
