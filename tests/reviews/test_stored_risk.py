"""Each item's stored risk: right when it opens, after a reviewer's edit, after a threshold change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from reviews.models import ApprovalPolicy, ReviewItem
from reviews.risk import RiskFacts, stored_facts_backfill
from runs.lifecycle.reviews import review_edit
from runs.models import Run, Step
from tests.reviews.conftest import step
from tests.reviews.test_triage import rows
from tests.reviews.test_views import client_for

pytestmark = pytest.mark.django_db

RISK_COLUMNS = ("risk_sensitive", "risk_production", "risk_min_confidence", "risk_score")


def stored(item: ReviewItem) -> tuple[Any, ...]:
    item.refresh_from_db()
    return tuple(getattr(item, name) for name in RISK_COLUMNS)


def test_an_item_stores_its_plans_risk_and_submitter_when_it_opens(
    three: dict[str, ReviewItem],
) -> None:
    assert stored(three["high"]) == (True, True, 0.4, 5)
    assert stored(three["medium"]) == (False, True, None, 2)
    assert stored(three["low"]) == (False, False, 0.9, 0)
    assert three["medium"].submitter_name == "ada" and three["low"].submitter_name == "olivia"


def test_a_reviewer_edit_adding_a_sensitive_tool_or_a_production_target_restores_the_risk(
    three: dict[str, ReviewItem], reviewer: User, key: str
) -> None:
    low = three["low"]
    deploy = step("ship", "deploy", key, ("read",), confidence=0.3)
    deploy["params"]["environment"] = "production"
    document = {"goal": "low, then not", "steps": [step("read", "record", key), deploy]}
    review_edit(item_id=low.pk, user=reviewer, document=document)
    assert stored(low) == (True, True, 0.3, 5)
    # The queue reads the stored score: the item moved from low to high.
    client = client_for(reviewer)
    high = rows(client.get("/reviews/", {"risk": "high"}).content.decode())
    assert sorted(high) == sorted([low.pk, three["high"].pk])
    assert rows(client.get("/reviews/", {"risk": "low"}).content.decode()) == []


def test_an_edit_dropping_the_risky_step_lowers_the_stored_risk(
    three: dict[str, ReviewItem], reviewer: User, key: str
) -> None:
    high = three["high"]
    document = {"goal": "calmer", "steps": [step("read", "record", key, confidence=0.95)]}
    review_edit(item_id=high.pk, user=reviewer, document=document)
    assert stored(high) == (False, False, 0.95, 0)


def test_changing_the_global_threshold_in_the_admin_rescores_every_item(
    three: dict[str, ReviewItem], admin_user: User
) -> None:
    policy = ApprovalPolicy.objects.get(tool__isnull=True, task__isnull=True)
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        f"/admin/reviews/approvalpolicy/{policy.pk}/change/",
        {"mode": "always", "confidence_threshold": "0.95", "required_approvals": "1"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    # 0.9 is now below the threshold: the low item gains the point; the others keep theirs.
    assert stored(three["low"])[3] == 1
    assert stored(three["high"])[3] == 5 and stored(three["medium"])[3] == 2


def test_the_rescore_command_follows_the_threshold_in_force(
    three: dict[str, ReviewItem], capsys: pytest.CaptureFixture[str]
) -> None:
    ApprovalPolicy.objects.filter(tool__isnull=True, task__isnull=True).update(
        confidence_threshold=0.3
    )
    call_command("review_rescore")
    assert capsys.readouterr().out == (
        "Checked 3 review item(s) against the threshold 0.3; 1 changed score.\n"
    )
    assert stored(three["high"])[3] == 4  # 0.4 is no longer low


def test_the_rescore_command_says_how_many_it_checked_when_none_changed(
    three: dict[str, ReviewItem], capsys: pytest.CaptureFixture[str]
) -> None:
    decided = three["medium"]
    ReviewItem.objects.filter(pk=decided.pk).update(status="approved")
    call_command("review_rescore")
    # Decided items are rescored too: the queue filters them by risk as well.
    assert capsys.readouterr().out == (
        "Checked 3 review item(s) against the threshold 0.6; 0 changed score.\n"
    )


def test_the_backfill_stores_what_opening_stores(
    three: dict[str, ReviewItem], global_policy: Callable[..., ApprovalPolicy]
) -> None:
    before = {name: stored(item) for name, item in three.items()}
    ReviewItem.objects.update(
        risk_sensitive=False,
        risk_production=False,
        risk_min_confidence=None,
        risk_score=0,
        submitter_name="",
    )
    stored_facts_backfill(
        ReviewItem.objects.all(), Step.objects.all(), Run.objects.all(), low_confidence=0.6
    )
    assert {name: stored(item) for name, item in three.items()} == before
    assert ReviewItem.objects.get(pk=three["medium"].pk).submitter_name == "ada"


def test_a_plan_without_steps_or_confidence_scores_nothing() -> None:
    assert RiskFacts().score(0.6) == 0
    assert RiskFacts(min_confidence=0.6).score(0.6) == 0  # below, not at, the threshold
    assert RiskFacts(True, True, 0.1).fields(0.6)["risk_score"] == 5
