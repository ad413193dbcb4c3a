"""Suites in the admin: checked when saved, every problem shown; suite runs are read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from runs.models import EvalSuite, SuiteRun

SUITES = "/admin/runs/evalsuite/"
GOOD = (
    "name: nightly\ntasks:\n"
    "  - {name: t, text: do it, plan: {goal: g, steps: [{id: a, action: noop}]}, "
    "expect: {outcome: succeeded}}\n"
)


@pytest.fixture
def admin_client(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


def test_a_valid_suite_is_saved(admin_client: Client) -> None:
    response = admin_client.post(SUITES + "add/", {"name": "nightly", "text": GOOD, "source": ""})
    assert response.status_code == 302
    assert EvalSuite.objects.get().text == GOOD.strip()


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("nightly", "name: nightly\ntasks: []\n", "tasks: List should have at least 1 item"),
        ("nightly", "name: [", "not valid YAML"),
        ("other", GOOD, "must be the same as Name"),
        (
            "nightly",
            GOOD.replace("plan: {goal: g, steps: [{id: a, action: noop}]}", "plan: p.yaml"),
            "needs a suite file",
        ),
    ],
)
def test_an_unusable_suite_is_refused_with_the_reason(
    admin_client: Client, name: str, text: str, says: str
) -> None:
    response = admin_client.post(SUITES + "add/", {"name": name, "text": text, "source": ""})
    assert response.status_code == 200
    assert says in response.content.decode()
    assert not EvalSuite.objects.exists()


def test_suite_runs_are_read_only_and_staff_only(
    admin_client: Client, operator: User, client: Client
) -> None:
    now = timezone.now()
    run = SuiteRun.objects.create(suite_name="demo", mode="replay", started_at=now, finished_at=now)
    assert admin_client.get(f"/admin/runs/suiterun/{run.pk}/change/").status_code == 200
    assert admin_client.get("/admin/runs/suiterun/add/").status_code == 403
    client.force_login(operator)
    assert client.get("/admin/runs/evalsuite/").status_code == 302


def test_a_suite_file_is_imported_and_then_edited(admin_client: Client) -> None:
    upload = SimpleUploadedFile("nightly.yaml", GOOD.encode())
    response = admin_client.post(SUITES + "add/", {"name": "nightly", "upload": upload})
    assert response.status_code == 302
    suite = EvalSuite.objects.get()
    assert (suite.text, suite.source) == (GOOD, "nightly.yaml")  # the file as it is
    edited = GOOD.replace("do it", "do it again")
    response = admin_client.post(
        f"{SUITES}{suite.pk}/change/", {"name": "nightly", "text": edited, "source": "nightly.yaml"}
    )
    assert response.status_code == 302
    assert "do it again" in EvalSuite.objects.get().text


@pytest.mark.parametrize(
    ("content", "says"),
    [(b"\xff\xfe not text", "A suite file is UTF-8 text."), (b"name: [", "not valid YAML")],
)
def test_an_unusable_file_is_refused(admin_client: Client, content: bytes, says: str) -> None:
    upload = SimpleUploadedFile("bad.yaml", content)
    response = admin_client.post(SUITES + "add/", {"name": "nightly", "upload": upload})
    assert response.status_code == 200
    assert says in response.content.decode()
    assert not EvalSuite.objects.exists()


def test_a_suite_needs_a_text_or_a_file(admin_client: Client) -> None:
    response = admin_client.post(SUITES + "add/", {"name": "nightly", "text": ""})
    assert "Write the suite&#x27;s YAML here, or import a file." in response.content.decode()
    assert not EvalSuite.objects.exists()
