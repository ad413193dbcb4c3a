"""The API's answers to failures outside any one endpoint."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from psycopg_pool import PoolTimeout

from runs import selectors
from tests.runs.api.conftest import api_as


@pytest.mark.django_db
def test_an_exhausted_connection_pool_answers_503_with_retry_after(
    operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy() -> None:
        raise PoolTimeout("couldn't get a connection after 20.00 sec")

    monkeypatch.setattr(selectors, "run_list_with_progress", busy)
    response = api_as(operator).get("/runs/1")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["code"] == "unavailable"
