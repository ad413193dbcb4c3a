"""Exporting a run: one document that satisfies the published JSON Schema, redacted."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from runs.lifecycle.snapshots import snapshot_export, snapshot_schema
from runs.models import Run
from runs.tokens import api_token_create
from tests.runs.api.conftest import ApiClient
from tests.runs.snapshots.conftest import EMAIL, SECRET

DOCS_SCHEMA = Path(settings.BASE_DIR) / "docs" / "run-snapshot.schema.json"


def _validate(document: Any) -> None:
    schema = json.loads(DOCS_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)


def test_the_published_schema_is_the_one_the_code_validates_with() -> None:
    assert json.loads(DOCS_SCHEMA.read_text(encoding="utf-8")) == snapshot_schema()


def test_an_export_satisfies_the_json_schema_and_holds_the_whole_run(finished_run: Run) -> None:
    document = snapshot_export(run_id=finished_run.pk)

    _validate(document)
    assert document["source"]["run_id"] == finished_run.pk
    assert document["task"]["title"] == "Nightly backup"
    assert document["task"]["submitted_by"] == "olivia"
    assert document["run"]["status"] == "failed"
    [plan] = document["plans"]
    assert {s["key"]: s["status"] for s in plan["steps"]} == {
        "backup": "succeeded",
        "notify": "failed",
    }
    assert [e["seq"] for e in document["transcript"]] == list(
        range(1, len(document["transcript"]) + 1)
    )
    assert "run.created" in {e["kind"] for e in document["transcript"]}


def test_an_export_holds_no_secret_and_no_email_address(finished_run: Run) -> None:
    text = json.dumps(snapshot_export(run_id=finished_run.pk))

    assert SECRET not in text
    assert EMAIL not in text
    assert "@example.test" not in text  # the operator's own address
    assert "[REDACTED:email:1]" in text
    assert "[REDACTED:anthropic_key:1]" in text


def test_the_api_exports_a_run_to_anyone_who_may_see_runs(
    finished_run: Run, reviewer: User, outsider: User
) -> None:
    token = api_token_create(user=reviewer, name="t").plaintext
    response = ApiClient(token).get(f"/runs/{finished_run.pk}/export")

    assert response.status_code == 200
    _validate(response.json())
    assert EMAIL not in response.content.decode()
    assert ApiClient(token).get("/runs/999999/export").status_code == 404
    other = api_token_create(user=outsider, name="t").plaintext
    assert ApiClient(other).get(f"/runs/{finished_run.pk}/export").status_code == 403


def test_run_export_writes_the_file_and_refuses_an_unknown_run(
    finished_run: Run, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    call_command("run_export", str(finished_run.pk), "-o", str(out), stdout=StringIO())

    _validate(json.loads(out.read_text(encoding="utf-8")))
    with pytest.raises(CommandError, match="no run 999999"):
        call_command("run_export", "999999", stdout=StringIO())
