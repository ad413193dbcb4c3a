"""A run's executions as spans of one trace, whose id the run keeps (``Run.trace_id``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from runs.models import Run
from runs.telemetry import tracing


@contextmanager
def traced_run(run_id: int, *, phase: str) -> Iterator[None]:
    """Within the block the run's span is current and log lines name the run.

    Reads the run's trace id only while tracing is on; stores it the first time.
    """
    stored = ""
    if tracing.enabled():
        stored = Run.objects.filter(pk=run_id).values_list("trace_id", flat=True).first() or ""
    with tracing.run_span(run_id, stored, phase=phase) as trace_id:
        if trace_id and trace_id != stored:
            Run.objects.filter(pk=run_id, trace_id="").update(trace_id=trace_id)
        yield
