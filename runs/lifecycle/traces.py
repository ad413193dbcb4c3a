"""A run's executions as spans of one trace, whose id the run keeps (``Run.trace_id``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from runs.dbthreads import in_db_thread
from runs.models import Run
from runs.telemetry import tracing

T = TypeVar("T")


@contextmanager
def traced_run(run_id: int, *, phase: str) -> Iterator[None]:
    """Within the block the run's span is current and log lines name the run.

    Reads the run's trace id only while tracing is on; stores it the first time.
    """
    stored = _stored_trace_id(run_id) if tracing.enabled() else ""
    with tracing.run_span(run_id, stored, phase=phase) as trace_id:
        if trace_id and trace_id != stored:
            _keep_trace_id(run_id, trace_id)
        yield


async def traced_run_async(run_id: int, *, phase: str, work: Callable[[], Awaitable[T]]) -> T:
    """``traced_run`` around ``await work()``, for a run executed on a shared event loop."""
    stored = await in_db_thread(lambda: _stored_trace_id(run_id)) if tracing.enabled() else ""
    with tracing.run_span(run_id, stored, phase=phase) as trace_id:
        if trace_id and trace_id != stored:
            await in_db_thread(lambda: _keep_trace_id(run_id, trace_id))
        return await work()


def _stored_trace_id(run_id: int) -> str:
    return Run.objects.filter(pk=run_id).values_list("trace_id", flat=True).first() or ""


def _keep_trace_id(run_id: int, trace_id: str) -> None:
    Run.objects.filter(pk=run_id, trace_id="").update(trace_id=trace_id)
