"""The run both tracing tests trace: a step that fails once and retries, then a shell step
that prints the ``TRACEPARENT`` it was given."""

from __future__ import annotations

from collections.abc import Callable

from runs.models import Run, RunStatus, Tool

ECHO_TRACEPARENT = "import json, os; print(json.dumps({'tp': os.environ.get('TRACEPARENT')}))"


def retry_then_shell(execute: Callable[..., Run], make_tool: Callable[..., Tool], key: str) -> Run:
    """Execute the run (it must succeed): step ``a`` fails once, then ``sh`` echoes its parent."""
    make_tool(
        "echo_tp",
        "record",
        kind=Tool.Kind.SHELL,
        config={"argv": ["{python}", "-c", ECHO_TRACEPARENT], "output": "json"},
    )
    plan = {
        "steps": [
            {"id": "a", "action": "flaky", "params": {"key": key, "label": "a", "fail_times": 1}},
            {"id": "sh", "action": "echo_tp", "depends_on": ["a"]},
        ]
    }
    run = execute(plan)
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    return run
