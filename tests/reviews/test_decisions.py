"""Decision rules: checklist, quorum, four-eyes, claim and assign, one decision per item."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, User

from reviews.decisions import review_assign, review_claim
from reviews.models import Approval, ApprovalPolicy, AuditEntry, ReviewItem
from reviews.statemachine import (
    AlreadyDecided,
    ChecklistIncomplete,
    FourEyesViolation,
    NotAllowed,
    ReviewError,
)
from runs.lifecycle.reviews import review_approve, review_edit, review_reject
from runs.models import Plan, Run, Tool
from runs.permissions import REVIEWERS
from tests.reviews.conftest import all_ticks

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer2(db: None) -> User:
    """Rita, a second reviewer."""
    user = User.objects.create_user("rita", "rita@example.test", "pw-rita")
    user.groups.add(Group.objects.get_or_create(name=REVIEWERS)[0])
    return user


def test_approving_needs_every_checklist_item_ticked(held: ReviewItem, reviewer: User) -> None:
    assert len(held.checklist) == 3
    with pytest.raises(ChecklistIncomplete) as caught:
        review_approve(item_id=held.pk, user=reviewer, checklist=["0", "2"])
    assert caught.value.missing == [held.checklist[1]]
    held.refresh_from_db()
    assert held.status == "open" and not Approval.objects.filter(item=held).exists()
    assert review_approve(item_id=held.pk, user=reviewer, checklist=["0", "1", "2"]).status == (
        "approved"
    )


def test_garbage_ticks_do_not_count(held: ReviewItem, reviewer: User) -> None:
    with pytest.raises(ChecklistIncomplete):
        review_approve(item_id=held.pk, user=reviewer, checklist=["x", "", "9", "-1"])


def test_a_quorum_item_waits_for_enough_distinct_approvals(
    submit: Callable[..., Run],
    plan_doc: dict,
    global_policy: Callable[..., ApprovalPolicy],
    tools: dict[str, Tool],
    reviewer: User,
    reviewer2: User,
) -> None:
    global_policy("sensitive")
    ApprovalPolicy.objects.create(tool=tools["deploy"], mode="sensitive", required_approvals=2)
    run = submit(plan_doc)
    item = ReviewItem.objects.get(run=run)
    assert item.required_approvals == 2
    first = review_approve(item_id=item.pk, user=reviewer, checklist=all_ticks(item))
    assert first.status == "open"
    with pytest.raises(ReviewError, match="already approved"):
        review_approve(item_id=item.pk, user=reviewer, checklist=all_ticks(item))
    assert Run.objects.get(pk=run.pk).status == "awaiting_approval"
    second = review_approve(item_id=item.pk, user=reviewer2, checklist=all_ticks(item))
    assert second.status == "approved" and second.decided_by == reviewer2
    assert Run.objects.get(pk=run.pk).status == "queued"
    assert [a.user for a in Approval.objects.filter(item=item)] == [reviewer, reviewer2]


def test_four_eyes_stops_a_reviewer_approving_their_own_task(
    submit: Callable[..., Run],
    plan_doc: dict,
    global_policy: Callable[..., ApprovalPolicy],
    reviewer: User,
    reviewer2: User,
) -> None:
    global_policy("always")
    run = submit(plan_doc, by=reviewer)
    item = ReviewItem.objects.get(run=run)
    with pytest.raises(FourEyesViolation):
        review_approve(item_id=item.pk, user=reviewer, checklist=all_ticks(item))
    with pytest.raises(FourEyesViolation):
        review_edit(
            item_id=item.pk,
            user=reviewer,
            document=plan_doc,
            approve=True,
            checklist=all_ticks(item),
        )
    assert review_approve(item_id=item.pk, user=reviewer2, checklist=all_ticks(item)).status == (
        "approved"
    )


def test_four_eyes_can_be_switched_off(
    submit: Callable[..., Run],
    plan_doc: dict,
    global_policy: Callable[..., ApprovalPolicy],
    reviewer: User,
    settings: object,
) -> None:
    settings.PLANNERWEB_FOUR_EYES = False  # type: ignore[attr-defined]
    global_policy("always")
    item = ReviewItem.objects.get(run=submit(plan_doc, by=reviewer))
    assert review_approve(item_id=item.pk, user=reviewer, checklist=all_ticks(item)).status == (
        "approved"
    )


def test_only_reviewers_decide_even_when_calling_the_service(
    held: ReviewItem, operator: User, outsider: User
) -> None:
    for user in (operator, outsider):
        with pytest.raises(NotAllowed):
            review_approve(item_id=held.pk, user=user, checklist=all_ticks(held))
        with pytest.raises(NotAllowed):
            review_reject(item_id=held.pk, user=user, reason="no")
        with pytest.raises(NotAllowed):
            review_claim(item_id=held.pk, user=user)


def test_a_decided_item_says_who_decided_it(
    held: ReviewItem, reviewer: User, reviewer2: User
) -> None:
    review_reject(item_id=held.pk, user=reviewer, reason="not today")
    with pytest.raises(AlreadyDecided, match="already rejected by rob"):
        review_approve(item_id=held.pk, user=reviewer2, checklist=all_ticks(held))
    with pytest.raises(AlreadyDecided):
        review_claim(item_id=held.pk, user=reviewer2)


def test_a_claimed_item_is_decided_by_its_claimant(
    held: ReviewItem, reviewer: User, reviewer2: User
) -> None:
    claimed = review_claim(item_id=held.pk, user=reviewer)
    assert claimed.assignee == reviewer and claimed.claimed_at is not None
    with pytest.raises(NotAllowed, match="already claimed by rob"):
        review_claim(item_id=held.pk, user=reviewer2)
    with pytest.raises(NotAllowed, match="claimed by rob"):
        review_reject(item_id=held.pk, user=reviewer2, reason="mine now")
    assert review_reject(item_id=held.pk, user=reviewer, reason="bad").status == "rejected"


def test_assigning_hands_an_item_over_and_is_audited(
    held: ReviewItem, reviewer: User, reviewer2: User, operator: User
) -> None:
    review_claim(item_id=held.pk, user=reviewer)
    item = review_assign(item_id=held.pk, user=reviewer, assignee=reviewer2)
    assert item.assignee == reviewer2
    with pytest.raises(NotAllowed, match="not a reviewer"):
        review_assign(item_id=held.pk, user=reviewer, assignee=operator)
    entry = AuditEntry.objects.get(item_id=held.pk, action="review.assigned")
    assert (entry.actor_name, entry.before["assignee"], entry.after["assignee"]) == (
        "rob",
        "rob",
        "rita",
    )
    unassigned = review_assign(item_id=held.pk, user=reviewer2, assignee=None)
    assert unassigned.assignee is None and unassigned.claimed_at is None


def test_several_open_items_of_one_run_are_decided_independently(
    held: ReviewItem, reviewer: User
) -> None:
    from runs.lifecycle.escalations import escalation_open

    other = escalation_open(
        run_id=held.run_id, cause="budget_breached", reason="max tokens 10 > 5", context={}
    )
    review_reject(item_id=held.pk, user=reviewer, reason="no")
    other.refresh_from_db()
    assert other.status == "open"


def test_saving_and_approving_an_edit_that_needs_a_quorum_counts_only_the_editors_approval(
    held: ReviewItem, tools: dict[str, Tool], reviewer: User, reviewer2: User, key: str
) -> None:
    from tests.reviews.conftest import step

    ApprovalPolicy.objects.create(tool=tools["notify"], mode="never", required_approvals=2)
    document = {"steps": [step("tell", "notify", key)]}
    edited = review_edit(
        item_id=held.pk, user=reviewer, document=document, approve=True, checklist=all_ticks(held)
    )
    # The same item now reviews the new version, with the editor's approval of it.
    new = Plan.objects.get(run=held.run, version=2)
    assert (edited.pk, edited.status) == (held.pk, "open")
    assert (edited.plan, edited.result_plan, edited.required_approvals) == (new, new, 2)
    assert [a.user for a in edited.approvals.all()] == [reviewer]
    assert Run.objects.get(pk=held.run_id).status == "awaiting_approval"
    done = review_approve(item_id=held.pk, user=reviewer2, checklist=all_ticks(held))
    assert done.status == "approved"
    run = Run.objects.get(pk=held.run_id)
    assert (run.status, run.current_plan) == ("queued", new)
