"""The served OpenAPI document: no duplicated keys, valid OpenAPI, and honest about inputs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from openapi_spec_validator import validate

from runs.api.inputs import STORABLE_TEXT

pytestmark = pytest.mark.django_db


def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicated = sorted({key for key in keys if keys.count(key) > 1})
    if duplicated:
        raise ValueError(f"duplicated keys {duplicated} in {keys}")
    return dict(pairs)


@pytest.fixture
def document(client: Client) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return json.loads(response.content, object_pairs_hook=no_duplicates)  # type: ignore[no-any-return]


def test_the_parser_refuses_a_duplicated_key() -> None:
    with pytest.raises(ValueError, match="duplicated keys"):
        json.loads('{"200": 1, "200": 2}', object_pairs_hook=no_duplicates)


def test_the_document_has_no_duplicated_key_and_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # openapi-spec-validator: raises on any problem
    csv = document["paths"]["/api/audit/csv"]["get"]["responses"]["200"]
    assert list(csv["content"]) == ["text/csv"]


def test_free_text_inputs_say_nul_is_refused_and_booleans_are_strict(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["ToolsImportIn"]["properties"]["text"]["pattern"] == STORABLE_TEXT
    title = schemas["TaskIn"]["properties"]["title"]
    assert title["pattern"] == STORABLE_TEXT
    assert schemas["ToolsImportIn"]["properties"]["replace"]["type"] == "boolean"
