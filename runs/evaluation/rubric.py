"""The ``llm_rubric`` check: a language model judges a step's result against a rubric.

Called from the executor in a helper thread (never on its event loop). The call
goes through the planner providers (``runs.planning.providers``) and is recorded
as an ``LlmCall`` (purpose ``step``), so it counts against the run's budgets.
A provider error is a failed check with the error as its reason, never a crash.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.db import transaction

from runs.evaluation.checks import as_text, pick
from runs.planning.accounting import record_calls
from runs.planning.attempts import CallRecord
from runs.planning.providers import LLM_PROVIDERS, get_provider
from runs.planning.providers.base import ModelRequest, ProviderError
from runs.statemachine import append_events

SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "reason": {"type": "string"},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}
SYSTEM = (
    "You check the result of one automated step against a rubric. "
    'Answer with JSON {"verdict": "pass" | "fail", "reason": "<one sentence>"}.'
)
_MAX_RESULT_CHARS = 8000


def judge(check: dict[str, Any], result: Any, *, run_id: int, step: str) -> str | None:
    """Why the model says ``result`` fails the rubric, or None when it passes; records the call."""
    name = check.get("provider") or settings.PLANNERWEB_PLANNER
    if name not in LLM_PROVIDERS:
        name = "openai"
    model = check.get("model") or settings.PLANNERWEB_PLANNER_MODEL
    text = as_text(pick(result, check.get("path")))[:_MAX_RESULT_CHARS]
    prompt = [
        {
            "role": "user",
            "content": f"Rubric:\n{check['rubric']}\n\nResult of step {step!r}:\n{text}",
        }
    ]
    record = CallRecord(provider=name, model=model, purpose="step", attempt=1, prompt=prompt)
    started = time.monotonic()
    failure: str | None
    try:
        reply = get_provider(name).complete(
            ModelRequest(
                system=SYSTEM,
                messages=prompt,
                schema=SCHEMA,
                schema_name="verdict",
                model=model,
                max_tokens=300,
            )
        )
    except ProviderError as exc:
        record.error = exc.message
        record.latency_ms = exc.latency_ms or int((time.monotonic() - started) * 1000)
        failure = f"llm_rubric: the model call failed: {exc.message}"
    else:
        record.model = reply.model or model
        record.response = reply.text
        record.tokens_in, record.tokens_out = reply.tokens_in, reply.tokens_out
        record.latency_ms = reply.latency_ms
        record.refusal = reply.refusal
        data = reply.data if isinstance(reply.data, dict) else None
        if reply.refusal:
            failure = f"llm_rubric: the model declined: {reply.refusal}"
        elif data is None or data.get("verdict") not in ("pass", "fail"):
            failure = f"llm_rubric: unreadable verdict {json.dumps(reply.text)[:120]}"
        elif data["verdict"] == "fail":
            failure = f"llm_rubric: {data.get('reason') or 'the rubric was not met'}"
        else:
            failure = None
    _record(run_id, record)
    return failure


@transaction.atomic
def _record(run_id: int, record: CallRecord) -> None:

    append_events(run_id, record_calls(run_id=run_id, calls=[record]))
