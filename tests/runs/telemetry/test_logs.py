"""Log lines as the configured console handler writes them: refusals in one line without a
traceback, and JSON lines naming the run and step they concern."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, RunStatus, Tool
from runs.telemetry.logs import JsonFormatter, TextFormatter
from tests.runs.api.conftest import api_as
from tests.runs.views.conftest import client_for

log = logging.getLogger("tests.tool")


def shout(key: str, label: str) -> dict[str, Any]:
    """A python tool that logs a line (run by the tests below)."""
    log.warning("tool %s speaking", label)
    return {"label": label}


@pytest.fixture
def console() -> Iterator[tuple[logging.Handler, io.StringIO]]:
    """The console handler settings.LOGGING configured, writing into a buffer."""
    (handler,) = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h.formatter, TextFormatter | JsonFormatter)
    ]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    stream = handler.setStream(buffer)
    formatter = handler.formatter
    yield handler, buffer
    handler.setFormatter(formatter)
    handler.setStream(stream)


@pytest.mark.django_db
def test_a_forbidden_page_is_logged_as_one_line_without_a_traceback(
    console: tuple[logging.Handler, io.StringIO], outsider: User, operator: User
) -> None:
    run = run_submit_plan(title="t", document={"steps": []}, submitted_by=operator)
    _, buffer = console
    assert client_for(outsider).get(reverse("runs:detail", args=[run.pk])).status_code == 403
    assert client_for(operator).get(reverse("runs:detail", args=[999_999])).status_code == 404
    assert api_as(None).get("/runs").status_code == 401
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert "Forbidden" in lines[0] and "Not Found" in lines[1] and "Unauthorized" in lines[2]
    assert "Traceback" not in buffer.getvalue()


@pytest.mark.django_db
def test_a_refusal_in_json_is_one_object_with_its_status(
    console: tuple[logging.Handler, io.StringIO], outsider: User, operator: User
) -> None:
    handler, buffer = console
    handler.setFormatter(JsonFormatter())
    run = run_submit_plan(title="t", document={"steps": []}, submitted_by=operator)
    assert client_for(outsider).get(reverse("runs:detail", args=[run.pk])).status_code == 403
    (line,) = buffer.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "django.request"
    assert entry["status_code"] == 403 and "exception" not in entry
    assert entry["run_id"] is None and entry["step"] is None


@pytest.mark.django_db(transaction=True)
def test_json_lines_logged_inside_a_step_name_its_run_and_step(
    console: tuple[logging.Handler, io.StringIO],
    execute: Callable[..., Run],
    make_tool: Callable[..., Tool],
) -> None:
    handler, buffer = console
    handler.setFormatter(JsonFormatter())
    make_tool("shout", "record", config={"callable": "tests.runs.telemetry.test_logs.shout"})
    run = execute(
        {"steps": [{"id": "loud", "action": "shout", "params": {"key": "k", "label": "x"}}]}
    )
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    entries = [json.loads(line) for line in buffer.getvalue().splitlines()]
    (spoken,) = [e for e in entries if e["logger"] == "tests.tool"]
    assert spoken["message"] == "tool x speaking"
    assert (spoken["run_id"], spoken["step"]) == (run.pk, "loud")
