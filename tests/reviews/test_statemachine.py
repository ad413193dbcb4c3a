"""The review item state machine: its table pair by pair against the spec, and
``review_transition`` taking every allowed decision and refusing every other pair."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from reviews.models import ReviewItem, ReviewStatus
from reviews.statemachine import REVIEW_TRANSITIONS, AlreadyDecided, ReviewError, review_transition
from runs.models import Run, Task

# The table as the design states it: an open item is decided once, a decided one never moves.
REVIEW_SPEC: dict[str, set[str]] = {
    "open": {"approved", "rejected", "edited", "expired"},
    "approved": set(),
    "rejected": set(),
    "edited": set(),
    "expired": set(),
}
DECIDED = {"approved", "rejected", "edited", "expired"}
PAIRS = [(current, target) for current in ReviewStatus.values for target in ReviewStatus.values]


def pair_id(pair: tuple[str, str]) -> str:
    return f"{pair[0]}->{pair[1]}"


def test_the_spec_and_the_table_name_every_status_once() -> None:
    assert set(REVIEW_SPEC) == set(ReviewStatus.values)
    assert set(REVIEW_TRANSITIONS) == set(ReviewStatus.values)


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_the_review_table_allows_exactly_the_specified_moves(pair: tuple[str, str]) -> None:
    current, target = pair
    assert (target in REVIEW_TRANSITIONS[current]) == (target in REVIEW_SPEC[current])


def test_every_decided_status_is_terminal() -> None:
    assert {status for status, targets in REVIEW_TRANSITIONS.items() if not targets} == DECIDED


@pytest.fixture
def item(db: None) -> ReviewItem:
    run = Run.objects.create(task=Task.objects.create(title="t"))
    return ReviewItem.objects.create(kind="plan_approval", run=run)


@pytest.mark.parametrize("target", sorted(REVIEW_SPEC["open"]))
def test_an_open_item_takes_each_decision_with_the_decider_and_time(
    target: str, item: ReviewItem, reviewer: User
) -> None:
    decided = review_transition(item=item, to=target, by=reviewer, decision="d", reason="why")
    stored = ReviewItem.objects.get(pk=item.pk)
    for row in (decided, stored):
        assert (row.status, row.decided_by, row.decision, row.reason) == (
            target,
            reviewer,
            "d",
            "why",
        )
        assert row.decided_at is not None


@pytest.mark.parametrize("pair", [p for p in PAIRS if p[1] not in REVIEW_SPEC[p[0]]], ids=pair_id)
def test_every_other_pair_is_refused_and_writes_nothing(
    pair: tuple[str, str], item: ReviewItem, reviewer: User
) -> None:
    current, target = pair
    ReviewItem.objects.filter(pk=item.pk).update(status=current)
    item.refresh_from_db()
    expected = AlreadyDecided if current in DECIDED else ReviewError
    with pytest.raises(expected) as refused:
        review_transition(item=item, to=target, by=reviewer, decision="d")
    if current in DECIDED:
        assert str(refused.value) == f"Review {item.pk} was already {current} by the system."
    else:
        assert not isinstance(refused.value, AlreadyDecided)
        assert f"cannot go from {current} to {target}" in str(refused.value)
    stored = ReviewItem.objects.get(pk=item.pk)
    assert (stored.status, stored.decided_by, stored.decided_at) == (current, None, None)


def test_a_decision_on_a_stale_copy_loses_to_the_one_already_stored(
    item: ReviewItem, reviewer: User, admin_user: User
) -> None:
    stale = ReviewItem.objects.get(pk=item.pk)
    review_transition(item=item, to="approved", by=admin_user, decision="approve")
    with pytest.raises(AlreadyDecided, match=f"already approved by {admin_user.username}"):
        review_transition(item=stale, to="rejected", by=reviewer, decision="reject")
    assert ReviewItem.objects.get(pk=item.pk).decided_by == admin_user
