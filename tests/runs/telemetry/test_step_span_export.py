"""Tracing configured by the OTEL_* variables, as a deployment turns it on: step spans are made
and exported by an exporter process, and reach a real OTLP/HTTP receiver in the run's trace."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from runs.models import Run, RunStatus, Step, Tool
from runs.telemetry import tracing
from tests.runs.telemetry.workload import retry_then_shell

pytestmark = pytest.mark.django_db(transaction=True)


class Receiver:
    """An OTLP/HTTP trace endpoint on loopback that decodes what it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"] or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        receiver.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def named(self, prefix: str) -> list[Span]:
        return [s for s in self.spans if s.name.startswith(prefix)]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    receiver = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    tracing.setup_from_env()
    yield receiver
    tracing.configure(None)
    receiver.server.shutdown()
    receiver.server.server_close()


def attribute(span: Span, name: str) -> Any:
    (value,) = [a.value for a in span.attributes if a.key == name]
    return getattr(value, value.WhichOneof("value"))


def test_step_spans_leave_through_the_exporter_process_in_the_run_trace(
    receiver: Receiver, execute: Callable[..., Run], make_tool: Callable[..., Tool], key: str
) -> None:
    run = retry_then_shell(execute, make_tool, key)
    exporter = tracing._steps
    assert isinstance(exporter, tracing.ProcessSink) and exporter.pid is not None
    tracing.configure(None)  # the exporter process flushes and exits when its pipe closes
    assert subprocess.run(["kill", "-0", str(exporter.pid)], capture_output=True).returncode
    (workflow,) = receiver.named("invoke_workflow")
    assert workflow.trace_id.hex() == run.trace_id
    tools = sorted(receiver.named("execute_tool"), key=lambda s: s.start_time_unix_nano)
    assert [(s.name, attribute(s, "plannerweb.step.attempt")) for s in tools] == [
        ("execute_tool flaky", 1),
        ("execute_tool flaky", 2),
        ("execute_tool echo_tp", 1),
    ]
    assert all(s.trace_id == workflow.trace_id for s in tools)
    assert all(s.parent_span_id == workflow.span_id for s in tools)
    assert attribute(tools[0], "gen_ai.tool.name") == "flaky"
    assert attribute(tools[2], "gen_ai.tool.call.id") == f"{run.pk}/sh/1"
    assert tools[0].status.code == tools[0].status.STATUS_CODE_ERROR
    assert all(s.end_time_unix_nano >= s.start_time_unix_nano > 0 for s in tools)
    sent = Step.objects.get(run=run, key="sh").result["tp"]
    version_trace_span, flags = sent.rsplit("-", 1)
    assert version_trace_span == f"00-{run.trace_id}-{tools[2].span_id.hex()}"
    assert int(flags, 16) & 1  # sampled


def test_an_unsampled_run_records_no_step_spans(
    receiver: Receiver, execute: Callable[..., Run], key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(None)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    tracing.setup_from_env()
    exporter = tracing._steps
    run = execute(
        {"steps": [{"id": "a", "action": "record", "params": {"key": key, "label": "a"}}]}
    )
    assert run.status == RunStatus.SUCCEEDED
    assert isinstance(exporter, tracing.ProcessSink) and exporter.pid is None  # nothing to ship
    tracing.configure(None)
    assert receiver.spans == []


EXPORTING_PARENT = textwrap.dedent(
    """
    import sys, time
    from runs.telemetry.step_spans import ProcessSink
    sink = ProcessSink(delay_seconds=0.05)
    sink.record((1, 0, 1, 2, time.time_ns(), time.time_ns(), "t", "s", 1, None, ""))
    print(sink.pid, flush=True)
    time.sleep(600)
    """
)


def test_the_exporter_process_never_outlives_its_worker() -> None:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}
    env["OTEL_BSP_EXPORT_TIMEOUT"] = "200"
    worker = subprocess.Popen(
        [sys.executable, "-c", EXPORTING_PARENT], stdout=subprocess.PIPE, text=True, env=env
    )
    assert worker.stdout is not None
    with worker.stdout:
        exporter = int(worker.stdout.readline())
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    for _ in range(600):  # the pipe closes with its worker: the exporter flushes and exits
        if not os.path.exists(f"/proc/{exporter}") or _zombie(exporter):
            break
        time.sleep(0.05)
    else:
        os.kill(exporter, signal.SIGKILL)
        pytest.fail("the exporter process outlived its worker")


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
