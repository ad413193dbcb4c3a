"""manage.py api_token: prints a working token once, refuses unknown users."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from runs.models import ApiToken
from tests.runs.api.conftest import ApiClient

pytestmark = pytest.mark.django_db


def test_the_api_token_command_prints_a_working_token_once(operator: User) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("api_token", "olivia", "deploy bot", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    assert secret.startswith("pw_") and secret not in err.getvalue()
    assert ApiToken.objects.get().name == "deploy bot"
    assert ApiClient(secret).get("/runs").status_code == 200


def test_the_api_token_command_refuses_an_unknown_user(db: None) -> None:
    with pytest.raises(CommandError, match="no user"):
        call_command("api_token", "nobody", "x", stdout=io.StringIO())
