"""manage.py seed_demo: it creates what is missing and leaves what exists as it is."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from runs.models import Playbook, Tool

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_a_second_seed_leaves_edited_tools_and_playbooks_as_they_are() -> None:
    seed()
    Tool.objects.filter(name="run_tests").update(timeout_seconds=5, description="our own tests")
    Playbook.objects.filter(name="demo-deploy").update(task_text="our own deploy")
    out = seed()
    tool = Tool.objects.get(name="run_tests")
    assert (tool.timeout_seconds, tool.description) == (5, "our own tests")
    assert Playbook.objects.get(name="demo-deploy").task_text == "our own deploy"
    assert "users: 0 created, 3 left as they were" in out
    assert "tools: 0 created, 17 left as they were" in out
    assert "playbooks: 0 created, 4 left as they were" in out
    assert "existing demo users, tools and playbooks were left as they are" in out


def test_a_seed_recreates_only_what_was_deleted() -> None:
    seed()
    Tool.objects.filter(name="run_tests").delete()
    Playbook.objects.filter(name="demo-deploy").delete()
    User.objects.filter(username="reviewer").delete()
    out = seed()
    assert "users: 1 created, 2 left as they were" in out
    assert "tools: 1 created, 16 left as they were" in out
    assert "playbooks: 1 created, 3 left as they were" in out
    assert Tool.objects.get(name="run_tests").timeout_seconds == 60
    assert User.objects.filter(username="reviewer").exists()


def test_a_first_seed_creates_everything_and_says_nothing_was_left() -> None:
    out = seed()
    assert "users: 3 created, 0 left as they were" in out
    assert "tools: 17 created, 0 left as they were" in out
    assert "playbooks: 4 created, 0 left as they were" in out
    assert "left as they are" not in out
