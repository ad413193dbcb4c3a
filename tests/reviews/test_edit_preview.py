"""A reviewer's edit previewed as a diff before it is saved; every version's diff; audit field diffs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User

from reviews.models import AuditEntry, ReviewItem
from runs.models import Plan
from runs.templatetags.planning import diff_context
from tests.reviews.test_views import client_for, decision_form

pytestmark = pytest.mark.django_db


def edited(item: ReviewItem, **ship_params: Any) -> str:
    """The item's plan as YAML with the ``ship`` step's params changed."""
    document = dict(item.plan.document)  # type: ignore[union-attr]
    steps = [dict(s) for s in document["steps"]]
    for s in steps:
        if s["id"] == "ship":
            s["params"] = {**s["params"], **ship_params}
    return yaml.safe_dump({**document, "steps": steps}, sort_keys=False)


def test_a_preview_shows_the_edit_as_a_field_diff_and_saves_nothing(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    form = decision_form(client, held)
    versions, entries = Plan.objects.count(), AuditEntry.objects.count()
    text = edited(held, env="production")
    response = client.post(
        f"/reviews/{held.pk}/preview/",
        {**form, "plan": text, "checklist": ["0"], "reason": "check prod", "next": "1"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "data-edit-preview" in html and "Your edit against v1 (not saved)" in html
    assert 'data-diff-step="ship"' in html
    assert (
        '<span data-diff-field="params.env">params.env: <ins>&quot;production&quot;</ins>' in html
    )
    assert "kept: read" in html
    # Nothing saved, nothing audited; the editor, ticks, reason and "next" are as sent.
    assert (Plan.objects.count(), AuditEntry.objects.count()) == (versions, entries)
    held.refresh_from_db()
    assert held.plan.version == 1  # type: ignore[union-attr]
    assert "env: production" in html and 'value="0" checked' in html
    assert ">check prod</textarea>" in html and "data-next checked" in html


def test_a_preview_of_an_invalid_edit_lists_its_problems_and_of_bad_yaml_its_syntax_error(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    form = decision_form(client, held)
    broken = form["plan"].replace("action: deploy", "action: no_such_tool")
    response = client.post(f"/reviews/{held.pk}/preview/", {**form, "plan": broken})
    html = response.content.decode()
    assert response.status_code == 200 and "data-problems" in html and "no_such_tool" in html
    assert '<span data-diff-field="action">action: <del>&quot;deploy&quot;</del>' in html
    response = client.post(f"/reviews/{held.pk}/preview/", {**form, "plan": "steps: [oops"})
    assert response.status_code == 422 and "data-syntax-error" in response.content.decode()
    assert Plan.objects.filter(run=held.run).count() == 1


def test_a_preview_of_an_unchanged_plan_says_so(held: ReviewItem, reviewer: User) -> None:
    client = client_for(reviewer)
    form = decision_form(client, held)
    html = client.post(f"/reviews/{held.pk}/preview/", form).content.decode()
    assert 'data-diff="same">no change' in html


@pytest.mark.parametrize("role", ["operator", "outsider"])
def test_only_reviewers_preview(
    held: ReviewItem, role: str, request: pytest.FixtureRequest
) -> None:
    client = client_for(request.getfixturevalue(role))
    assert client.post(f"/reviews/{held.pk}/preview/", {"plan": "steps: []"}).status_code == 403
    assert client_for(None).post(f"/reviews/{held.pk}/preview/").status_code == 302
    assert client.get(f"/reviews/{held.pk}/preview/").status_code in (403, 405)


def test_a_saved_edit_is_a_version_with_its_diff_shown_on_the_item_and_the_run_page(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    form = decision_form(client, held)
    response = client.post(f"/reviews/{held.pk}/edit/", {**form, "plan": edited(held, v="2")})
    assert response.status_code == 302
    v2 = Plan.objects.get(run=held.run, version=2)
    assert v2.diff["changed"][0]["changes"] == [
        {"path": "params.v", "op": "added", "from": None, "to": "2"}
    ]
    page = client.get(f"/reviews/{held.pk}/").content.decode()
    assert 'data-plan-diff="2"' in page and "against v1" in page
    live = client.get(f"/runs/{held.run_id}/live/").content.decode()
    assert 'data-plan-diff="2"' in live and 'data-diff-field="params.v"' in live


def test_audit_entries_show_before_and_after_as_a_field_diff(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    client.post(f"/reviews/{held.pk}/claim/")
    html = client.get(f"/reviews/audit/?item={held.pk}").content.decode()
    # review.claimed: the assignee changed from nobody to rob; nothing else is listed.
    assert '<li data-diff-field="assignee" data-op="added"><code>assignee</code>: ' in html
    assert "<ins>rob</ins>" in html
    assert "&quot;status&quot;" not in html  # no raw JSON side by side
    opened = (
        '<li data-diff-field="kind" data-op="added"><code>kind</code>: <ins>plan_approval</ins>'
    )
    assert opened in html


def test_the_live_preview_answers_with_the_diff_alone_and_saves_nothing(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    form = decision_form(client, held)
    versions, entries = Plan.objects.count(), AuditEntry.objects.count()
    live = {"HTTP_HX_REQUEST": "true"}
    url = f"/reviews/{held.pk}/preview/"
    response = client.post(url, {"plan": edited(held, env="production")}, **live)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html and "data-decision-form" not in html
    assert 'data-diff-field="params.env"' in html and "Your edit against v1 (not saved)" in html
    # Validation problems come with the diff; bad YAML with its syntax error (422).
    broken = form["plan"].replace("action: deploy", "action: no_such_tool")
    html = client.post(url, {"plan": broken}, **live).content.decode()
    assert (
        "data-preview-problems" in html and "no_such_tool" in html and "data-edit-preview" in html
    )
    response = client.post(url, {"plan": "steps: [oops"}, **live)
    assert response.status_code == 422 and "data-preview-syntax-error" in response.content.decode()
    assert "data-edit-preview" not in response.content.decode()
    assert (Plan.objects.count(), AuditEntry.objects.count()) == (versions, entries)
    held.refresh_from_db()
    assert held.plan.version == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("role", ["operator", "outsider"])
def test_only_reviewers_get_the_live_preview(
    held: ReviewItem, role: str, request: pytest.FixtureRequest
) -> None:
    client = client_for(request.getfixturevalue(role))
    response = client.post(
        f"/reviews/{held.pk}/preview/", {"plan": "steps: []"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 403 and "data-edit-preview" not in response.content.decode()


def many_steps(item: ReviewItem, count: int) -> str:
    """The item's plan as YAML with ``count`` more harmless steps (one short line each)."""
    document = item.plan.document  # type: ignore[union-attr]
    lines = yaml.safe_dump(document, sort_keys=False).splitlines()
    at = lines.index("steps:") + 1
    extra = [f"- {{id: extra{i}, action: record}}" for i in range(count)]
    return "\n".join([*lines[:at], *extra, *lines[at:]]) + "\n"


def test_a_preview_of_a_plan_too_large_to_save_is_refused_at_once_with_the_save_message(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    text = many_steps(held, 20_000)
    limit = "The plan has 20002 steps, more than the limit of 2000"
    url = f"/reviews/{held.pk}/preview/"
    live = client.post(url, {"plan": text}, HTTP_HX_REQUEST="true")
    html = live.content.decode()
    assert live.status_code == 422 and limit in html
    assert "data-edit-preview" not in html and len(live.content) < 2_000
    # The page without scripts keeps the editor's text and adds the refusal, no diff.
    page = client.post(url, {**decision_form(client, held), "plan": text})
    assert page.status_code == 422 and limit in page.content.decode()
    assert "data-edit-preview" not in page.content.decode()
    assert len(page.content) < len(text) + 60_000
    # Saving says the same.
    saved = client.post(f"/reviews/{held.pk}/edit/", {**decision_form(client, held), "plan": text})
    assert saved.status_code == 422 and limit in saved.content.decode()


def test_a_large_allowed_edit_previews_its_first_changed_lines_and_counts_the_rest(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    response = client.post(
        f"/reviews/{held.pk}/preview/", {"plan": many_steps(held, 1_500)}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200 and "data-edit-preview" in html
    assert "extra0, extra1" in html and "extra49" in html and "extra50," not in html
    assert '<li class="muted" data-diff="more">and 1450 more changed lines</li>' in html
    assert len(response.content) < 5_000


def test_the_preview_cap_counts_changed_fields_after_added_and_removed_steps() -> None:
    diff = {
        "added": ["a1", "a2"],
        "removed": ["r1"],
        "changed": [
            {"id": f"s{i}", "changes": [{"path": "params.v", "op": "changed", "from": 1, "to": 2}]}
            for i in range(3)
        ],
        "kept": ["k1", "k2", "k3", "k4", "k5"],
        "plan_changes": [],
    }
    shown = diff_context(diff, mark="preview", against=1, first=False, limit=4)
    assert (shown["added"], shown["removed"]) == (["a1", "a2"], ["r1"])
    assert [c["id"] for c in shown["changed"]] == ["s0"]
    assert shown["more"] == 2
    assert shown["kept"] == ["k1", "k2", "k3", "k4", "… and 1 more"]
    whole = diff_context(diff, mark="2", against=1, first=False)
    assert len(whole["changed"]) == 3 and whole["more"] == 0 and len(whole["kept"]) == 5


def test_a_large_saved_edit_shows_its_first_changed_lines_and_counts_the_rest(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    form = decision_form(client, held)
    saved = client.post(f"/reviews/{held.pk}/edit/", {**form, "plan": many_steps(held, 1_500)})
    assert saved.status_code == 302
    assert len(Plan.objects.get(run=held.run, version=2).diff["added"]) == 1_500
    for url in (f"/reviews/{held.pk}/", f"/runs/{held.run_id}/", f"/runs/{held.run_id}/live/"):
        page = client.get(url).content.decode()
        assert 'data-plan-diff="2"' in page, url
        assert "extra0, extra1" in page and "extra49" in page and "extra50," not in page, url
        assert '<li class="muted" data-diff="more">and 1450 more changed lines</li>' in page, url
