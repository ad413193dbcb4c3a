"""Real concurrent transactions on PostgreSQL: reviewers racing for one item, writers racing the chain."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, User

from reviews.audit import audit_record, audit_verify
from reviews.decisions import Binding
from reviews.models import Approval, ApprovalPolicy, AuditEntry, ReviewItem
from reviews.statemachine import AlreadyDecided, StalePlan
from runs.lifecycle.reviews import review_approve, review_edit, review_reject
from runs.models import Plan, Run, TranscriptEvent
from runs.permissions import REVIEWERS
from runs.plan_versions import plan_hash
from tests.reviews.conftest import all_ticks
from tests.runs.lifecycle.test_races import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def make_reviewers(n: int) -> list[User]:
    group = Group.objects.get_or_create(name=REVIEWERS)[0]
    users = []
    for i in range(n):
        user = User.objects.create_user(f"rev{i}", f"rev{i}@example.test", "pw")
        user.groups.add(group)
        users.append(user)
    return users


@pytest.mark.parametrize("reviewers", [2, 4])
def test_reviewers_approving_at_once_record_exactly_one_decision(
    held: ReviewItem, reviewers: int
) -> None:
    users = make_reviewers(reviewers)
    ticks = all_ticks(held)
    results = race(
        *[lambda u=u: review_approve(item_id=held.pk, user=u, checklist=ticks) for u in users]
    )
    winners = [r for r in results if isinstance(r, ReviewItem)]
    losers = [r for r in results if isinstance(r, AlreadyDecided)]
    assert len(winners) == 1 and len(losers) == reviewers - 1, results
    held.refresh_from_db()
    winner = held.decided_by
    assert held.status == "approved" and winner is not None
    assert all(f"already approved by {winner.username}" in str(e) for e in losers)
    assert Approval.objects.filter(item=held).count() == 1
    run = Run.objects.get(pk=held.run_id)
    assert run.status == "queued"
    assert TranscriptEvent.objects.filter(run=run, kind="review.decided").count() == 1
    seqs = list(TranscriptEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert AuditEntry.objects.filter(item_id=held.pk, action="review.approved").count() == 1
    assert audit_verify() == []


def test_an_approve_racing_a_reject_leaves_one_consistent_outcome(held: ReviewItem) -> None:
    a, b = make_reviewers(2)
    approved, rejected = race(
        lambda: review_approve(item_id=held.pk, user=a, checklist=all_ticks(held)),
        lambda: review_reject(item_id=held.pk, user=b, reason="no"),
    )
    held.refresh_from_db()
    run = Run.objects.get(pk=held.run_id)
    if held.status == "approved":
        assert isinstance(rejected, AlreadyDecided) and run.status == "queued"
    else:
        assert held.status == "rejected" and isinstance(approved, AlreadyDecided)
        assert run.status == "cancelled"


def test_a_quorum_of_two_racing_approvals_is_met_exactly_once(
    submit: Callable[..., Run],
    plan_doc: dict,
    global_policy: Callable[..., ApprovalPolicy],
    tools: dict,
) -> None:
    global_policy("sensitive")
    ApprovalPolicy.objects.create(tool=tools["deploy"], mode="sensitive", required_approvals=2)
    item = ReviewItem.objects.get(run=submit(plan_doc))
    users = make_reviewers(2)
    results = race(
        *[
            lambda u=u: review_approve(item_id=item.pk, user=u, checklist=all_ticks(item))
            for u in users
        ]
    )
    assert not any(isinstance(r, Exception) for r in results), results
    item.refresh_from_db()
    assert item.status == "approved" and Approval.objects.filter(item=item).count() == 2
    assert Run.objects.get(pk=item.run_id).status == "queued"


def test_an_approval_of_v1_racing_a_saved_edit_never_approves_what_was_not_seen(
    held: ReviewItem, plan_doc: dict, key: str
) -> None:
    a, b = make_reviewers(2)
    v1 = Binding(plan_version=1, plan_hash=plan_hash(held.plan))
    edited = {**plan_doc, "goal": "ship it to staging"}
    approved, saved = race(
        lambda: review_approve(item_id=held.pk, user=a, binding=v1, checklist=all_ticks(held)),
        lambda: review_edit(item_id=held.pk, user=b, document=edited, binding=v1),
    )
    held.refresh_from_db()
    run = Run.objects.get(pk=held.run_id)
    if held.status == "approved":  # the approval came first: v1 runs, the edit is too late
        assert isinstance(saved, AlreadyDecided) and held.plan.version == 1  # type: ignore[union-attr]
        assert (run.status, run.current_plan.version) == ("queued", 1)  # type: ignore[union-attr]
        assert not Plan.objects.filter(run=run, version=2).exists()
    else:  # the edit came first: the approval of v1 is stale, v2 waits
        assert isinstance(approved, StalePlan), approved
        assert (held.status, held.plan.version) == ("open", 2)  # type: ignore[union-attr]
        assert run.status == "awaiting_approval" and held.approvals.count() == 0
    assert audit_verify() == []


def test_concurrent_audit_writers_never_fork_the_chain(admin_user: User) -> None:
    def write(i: int) -> None:
        for j in range(5):
            audit_record(actor=None, action="test.write", object_type="x", object_id=f"{i}-{j}")

    results = race(*[lambda i=i: write(i) for i in range(4)])
    assert not any(isinstance(r, Exception) for r in results), results
    assert list(AuditEntry.objects.values_list("seq", flat=True)) == list(range(1, 21))
    assert audit_verify() == []
