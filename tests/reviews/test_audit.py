"""The audit trail: every decision and config change, hash-chained, verifiable, exportable."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client

from reviews.audit import audit_record, audit_verify
from reviews.decisions import review_claim
from reviews.models import ApprovalPolicy, AuditEntry, ReviewItem
from runs.lifecycle.reviews import review_approve
from runs.models import Tool
from tests.reviews.conftest import all_ticks

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(admin_user: User) -> list[AuditEntry]:
    return [
        audit_record(
            actor=admin_user,
            action="thing.changed",
            object_type="thing",
            object_id=i,
            before={"n": i},
            after={"n": i + 1},
            reason=f"because {i}",
        )
        for i in range(4)
    ]


def test_entries_link_to_the_one_before(chain: list[AuditEntry]) -> None:
    assert [e.seq for e in chain] == [1, 2, 3, 4]
    assert chain[0].prev_hash == ""
    assert all(b.prev_hash == a.hash for a, b in zip(chain, chain[1:], strict=False))
    assert audit_verify() == []


def test_entries_cannot_be_changed_or_deleted_through_the_orm(chain: list[AuditEntry]) -> None:
    entry = chain[1]
    entry.reason = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    with pytest.raises(ValueError, match="append-only"):
        entry.delete()


def test_an_edited_entry_is_detected_and_named(chain: list[AuditEntry]) -> None:
    AuditEntry.objects.filter(seq=2).update(reason="nothing to see")
    problems = audit_verify()
    assert problems[0].seq == 2 and "does not match its hash" in problems[0].message
    with pytest.raises(CommandError, match="broken at entry #2"):
        call_command("audit_verify")


def test_a_rehashed_edit_still_breaks_the_next_link(chain: list[AuditEntry]) -> None:
    # A forger who recomputes entry 2's hash still breaks entry 3's prev_hash.
    AuditEntry.objects.filter(seq=2).update(after={"n": 99}, hash="0" * 64)
    seqs = [p.seq for p in audit_verify()]
    assert seqs[:2] == [2, 3]


def test_a_deleted_entry_is_detected(chain: list[AuditEntry]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEntry._meta.db_table} WHERE seq = 3")
    assert audit_verify()[0].seq == 4


def test_a_truncated_tail_is_detected(chain: list[AuditEntry]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEntry._meta.db_table} WHERE seq = 4")
    problems = audit_verify()
    assert problems and "chain head says #4" in problems[0].message


def test_audit_verify_passes_on_an_intact_chain(chain: list[AuditEntry]) -> None:
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert "audit chain verified: 4 entries" in out.getvalue()


def test_decisions_are_audited_with_actor_object_and_reason(
    held: ReviewItem, reviewer: User
) -> None:
    review_claim(item_id=held.pk, user=reviewer)
    review_approve(item_id=held.pk, user=reviewer, checklist=all_ticks(held), reason="looks fine")
    entries = list(AuditEntry.objects.filter(item_id=held.pk).order_by("seq"))
    assert [e.action for e in entries] == ["review.opened", "review.claimed", "review.approved"]
    approved = entries[-1]
    assert (approved.actor, approved.run_id, approved.reason) == (
        reviewer,
        held.run_id,
        "looks fine",
    )
    assert approved.before["status"] == "open" and approved.after["status"] == "approved"
    assert audit_verify() == []


def test_tool_changes_in_the_admin_are_audited(admin_user: User, tools: dict[str, Tool]) -> None:
    client = Client()
    client.force_login(admin_user)
    tool = tools["notify"]
    response = client.post(
        f"/admin/runs/tool/{tool.pk}/change/",
        {
            "name": "notify",
            "description": "tell people",
            "kind": "python",
            "config": '{"callable": "tests.runs.toolbox.record"}',
            "parameters_schema": '{"type": "object"}',
            "timeout_seconds": "10",
            "max_retries": "2",
            "sensitive": "on",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    entry = AuditEntry.objects.get(action="tool.changed")
    assert entry.actor == admin_user and entry.object_type == "tool"
    assert (entry.before["sensitive"], entry.after["sensitive"]) == (False, True)
    assert entry.after["description"] == "tell people"
    client.post(f"/admin/runs/tool/{tool.pk}/delete/", {"post": "yes"})
    assert AuditEntry.objects.get(action="tool.deleted").before["name"] == "notify"
    assert audit_verify() == []


def test_policy_changes_in_the_admin_are_audited(admin_user: User) -> None:
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        "/admin/reviews/approvalpolicy/add/",
        {"mode": "sensitive", "confidence_threshold": "0.5", "required_approvals": "1"},
    )
    assert response.status_code == 302, response.content[:2000]
    policy = ApprovalPolicy.objects.get()
    entry = AuditEntry.objects.get(action="approval_policy.created")
    assert entry.before is None and entry.after["mode"] == "sensitive"
    client.post(
        f"/admin/reviews/approvalpolicy/{policy.pk}/change/",
        {"mode": "always", "confidence_threshold": "0.5", "required_approvals": "1"},
    )
    changed = AuditEntry.objects.get(action="approval_policy.changed")
    assert (changed.before["mode"], changed.after["mode"]) == ("sensitive", "always")


def test_the_csv_export_has_every_entry_filtered_by_run(
    held: ReviewItem, reviewer: User, chain: list[AuditEntry]
) -> None:
    review_approve(item_id=held.pk, user=reviewer, checklist=all_ticks(held), reason="=cmd()")
    client = Client()
    client.force_login(reviewer)
    response = client.get(f"/reviews/audit.csv?run={held.run_id}")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["action"] for r in rows] == ["review.opened", "review.approved"]
    assert rows[1]["actor"] == "rob" and rows[1]["reason"] == "'=cmd()"
    everything = b"".join(client.get("/reviews/audit.csv").streaming_content).decode()
    assert len(list(csv.DictReader(io.StringIO(everything)))) == AuditEntry.objects.count()


CHECKS = [{"type": "contains", "text": "ok", "path": "stdout", "on_fail": "warn"}]


def _checks_entry(tool: Tool) -> AuditEntry:
    entry = AuditEntry.objects.get(action="tool.changed", object_id=str(tool.pk))
    assert (entry.before["checks"], entry.after["checks"]) == ([], CHECKS)
    assert audit_verify() == []
    return entry


def test_a_change_to_only_the_checks_through_the_api_is_audited(
    admin_user: User, tools: dict[str, Tool]
) -> None:
    from tests.runs.api.conftest import api_as

    response = api_as(admin_user).patch("/tools/notify", {"checks": CHECKS})
    assert response.status_code == 200, response.json()
    assert _checks_entry(tools["notify"]).actor == admin_user


def test_a_change_to_only_the_checks_through_a_tools_yaml_import_is_audited(db: None) -> None:
    from runs.tools.yaml_io import tools_import

    text = "tools:\n  - name: echo\n    script: {python: runs.tools.builtin.echo}\n"
    tools_import(text=text)
    checked = (
        text + "    checks:\n      - {type: contains, text: ok, path: stdout, on_fail: warn}\n"
    )
    assert tools_import(text=checked).updated == ["echo"]
    assert _checks_entry(Tool.objects.get(name="echo")).reason == "tools.yaml import"


def test_a_change_to_only_the_checks_in_the_admin_is_audited(
    admin_user: User, tools: dict[str, Tool]
) -> None:
    client = Client()
    client.force_login(admin_user)
    tool = tools["notify"]
    response = client.post(
        f"/admin/runs/tool/{tool.pk}/change/",
        {
            "name": "notify",
            "description": "",
            "kind": "python",
            "config": '{"callable": "tests.runs.toolbox.record"}',
            "parameters_schema": '{"type": "object"}',
            "timeout_seconds": "10.0",
            "max_retries": "2",
            "enabled": "on",
            "checks": json.dumps(CHECKS),
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert _checks_entry(tool).actor == admin_user
