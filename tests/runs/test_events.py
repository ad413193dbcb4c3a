"""Transcript events: the executor's direct encoding of step changes equals the model's."""

from __future__ import annotations

import json

import pytest

from runs.events import StepStatusChanged, event_json, event_parse, step_status_json

CASES = [
    {"step_id": 1, "step": "backup", "phase": "main", "from_status": "pending",
     "to_status": "running", "attempt": 1},
    {"step_id": 2**40, "step": 'mig "users" ✓\n\t\\ é', "phase": "rollback",
     "from_status": "running", "to_status": "failed", "attempt": 3,
     "result": {"exit_code": 2, "stderr": "naïve \u0001 </script>", "rows": [1, 2.5, None]},
     "error": "exit 2: \u2028 line", "reason": "\x7f"},
    {"step_id": 7, "step": "s", "phase": "main", "from_status": "running",
     "to_status": "succeeded", "attempt": 1, "result": ["a", {"b": True}], "reason": "ok"},
    {"step_id": 8, "step": "long", "phase": "main", "from_status": "running",
     "to_status": "failed", "attempt": 2, "error": "x" * 500, "reason": "timeout"},
]  # fmt: skip


@pytest.mark.parametrize("fields", CASES)
def test_the_direct_encoding_of_a_step_change_is_the_models_json(fields: dict) -> None:
    model = StepStatusChanged(**fields)
    direct = step_status_json(
        **{k: v for k, v in fields.items() if k != "result"},
        result_json=json.dumps(fields.get("result")),
    )
    assert direct.kind == model.kind
    assert json.loads(direct.json) == json.loads(event_json(model))
    assert event_parse(direct.kind, json.loads(direct.json)) == model
    assert list(json.loads(direct.json)) == list(json.loads(event_json(model)))  # field order
    assert direct.summary == model.summary()  # the line the page shows for the stored event


def test_plain_values_encode_to_the_very_same_text() -> None:
    fields = CASES[0]
    assert step_status_json(**fields).json == event_json(StepStatusChanged(**fields))
