"""Tool faults: an injected timeout is a real one, enforced by the executor's own deadline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from runs.models import Run, Step, TranscriptEvent

pytestmark = pytest.mark.django_db(transaction=True)

SUITE = """name: slow
tasks:
  - name: check
    text: Check the production database
    faults: [{faults}]
    plan:
      goal: Check the production database
      steps:
        - {{id: schema, action: read_schema, params: {{db: prod.db}}}}
        - {{id: verify, action: verify_integrity, params: {{db: prod.db}}, depends_on: [schema]}}
    expect: {{outcome: {outcome}}}
"""


@pytest.fixture(autouse=True)
def quick(settings: Any) -> None:
    settings.PLANNERWEB_RETRY_BACKOFF_SECONDS = 0.01


def evaluate(folder: Path, faults: str, outcome: str) -> tuple[int, dict[str, Any]]:
    suite = folder / "slow.yaml"
    suite.write_text(SUITE.format(faults=faults, outcome=outcome))
    report = folder / "report.json"
    try:
        call_command("evaluate", str(suite), "--in-place", "--json", str(report))
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, json.loads(report.read_text())["tasks"][0]


def retries(run: Run) -> list[str]:
    events = TranscriptEvent.objects.filter(run=run, kind="step.retrying").order_by("seq")
    return [e.payload["error"] for e in events]


def test_a_timed_out_call_expires_at_its_deadline_and_the_retry_recovers(tmp_path: Path) -> None:
    code, task = evaluate(tmp_path, '"tool:timeout@1/0.3s"', "succeeded")
    assert (code, task["outcome"], task["tools"]) == (
        0,
        "succeeded",
        ["read_schema", "verify_integrity"],
    )
    assert task["injected"] == ["timeout at tool call 1 (read_schema)"]
    run = Run.objects.get()
    # The executor's deadline said so (the tool's own timeout is 30 s), and the retry ran.
    assert retries(run) == ["timed out after 0.3s"]
    assert Step.objects.get(run=run, key="schema").attempts == 2


def test_a_tool_that_always_times_out_fails_its_step_after_its_retries(tmp_path: Path) -> None:
    code, task = evaluate(
        tmp_path, "{target: tool, kind: timeout, at: 1, times: 50, seconds: 0.1}", "failed"
    )
    assert (code, task["outcome"], task["tools"]) == (0, "failed", ["read_schema"])
    run = Run.objects.get()
    assert retries(run) == ["timed out after 0.1s"] * 2  # read_schema retries twice
    schema = Step.objects.get(run=run, key="schema")
    assert (schema.status, schema.error, schema.attempts) == ("failed", "timed out after 0.1s", 3)
    assert len(task["injected"]) == 3  # every attempt timed out; the run ended, no loop
