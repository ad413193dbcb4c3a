from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, Tool
from tests.runs import toolbox


@pytest.fixture
def key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def calls(key: str) -> list[str]:
    return toolbox.CALLS[key]


@pytest.fixture
def fast_settings(settings: Any) -> Any:
    settings.PLANNERWEB_RETRY_BACKOFF_SECONDS = 0.01
    settings.PLANNERWEB_HEARTBEAT_SECONDS = 0.05
    return settings


@pytest.fixture
def make_tool(transactional_db: None) -> Callable[..., Tool]:
    def make(name: str, func: str, **fields: Any) -> Tool:
        defaults: dict[str, Any] = {
            "kind": Tool.Kind.PYTHON,
            "config": {"callable": f"tests.runs.toolbox.{func}"},
            "parameters_schema": {"type": "object"},
            "timeout_seconds": 10,
        }
        defaults.update(fields)
        return Tool.objects.create(name=name, **defaults)

    return make


@pytest.fixture
def toolset(make_tool: Callable[..., Tool]) -> None:
    make_tool("rendezvous", "rendezvous")
    make_tool("wait_gate", "wait_gate")
    make_tool("open_gate", "open_gate")
    make_tool("record", "record")
    make_tool("flaky", "flaky", idempotent=True, max_retries=2)
    make_tool("flaky_once", "flaky", idempotent=False, max_retries=2)
    make_tool("fail", "fail")
    make_tool("not_json", "not_json")
    make_tool("not_finite", "not_finite")
    make_tool("unstorable_text", "unstorable_text")
    make_tool("probe", "probe")


@pytest.fixture
def execute(fast_settings: Any, toolset: None) -> Callable[..., Run]:
    """Submit a plan as an operator would, execute it here, return the finished run."""

    def run(document: Any, *, max_parallel: int = 8) -> Run:
        submitted = run_submit_plan(
            title="test", document=document, submitted_by=None, max_parallel=max_parallel
        )
        assert submitted.status == "queued", submitted.stop_reason
        run_execute(run_id=submitted.pk)
        submitted.refresh_from_db()
        return submitted

    return run
