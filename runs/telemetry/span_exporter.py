"""The exporter process of step spans: ``python -m runs.telemetry.span_exporter``.

Reads the batches a ``ProcessSink`` writes on its standard input, turns each record into a
span and exports it over OTLP as the ``OTEL_*`` variables say (through the SDK's batch
processor), at the lowest CPU priority. Exits, after a last flush, when its standard input
closes: when the worker stops or dies.
"""

from __future__ import annotations

import os
import signal
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from runs.telemetry.step_spans import read_batches, readable, service_resource


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C: flush when the pipe closes
    os.nice(19)  # the worker's runs come first: spans are made and sent in spare CPU time
    processor = BatchSpanProcessor(OTLPSpanExporter())
    resource = service_resource()
    try:
        for batch in read_batches(sys.stdin.buffer):
            for record in batch:
                processor.on_end(readable(record, resource))
    finally:
        processor.shutdown()


if __name__ == "__main__":
    main()
