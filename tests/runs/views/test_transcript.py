"""The whole transcript page: paging back from the run page, bad cursors, missing runs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from runs.models import Run
from tests.runs.views.conftest import client_for

pytestmark = pytest.mark.django_db


def test_the_whole_transcript_pages_back_from_the_run_page_one_stretch_at_a_time(
    queued_run: Run, operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runs.views.detail.TRANSCRIPT_LIMIT", 1)
    monkeypatch.setattr("runs.views.transcript.TRANSCRIPT_LIMIT", 1)
    client = client_for(operator)
    transcript = reverse("runs:transcript", args=[queued_run.pk])
    detail = client.get(reverse("runs:detail", args=[queued_run.pk])).content.decode()
    assert f'href="{transcript}?before=2"' in detail  # the one hidden event, seq 1

    oldest = client.get(transcript, {"before": 2})
    page = oldest.content.decode()
    assert 'data-seq="1"' in page and 'data-seq="2"' not in page
    assert (oldest.context["older_before"], oldest.context["newer_before"]) == (None, 3)
    assert "Earlier events" not in page and 'href="?before=3"' in page

    newest = client.get(transcript, {"before": 3})
    assert [e.seq for e in newest.context["events"]] == [2]
    assert (newest.context["older_before"], newest.context["newer_before"]) == (2, None)
    assert [e.seq for e in client.get(transcript).context["events"]] == [2]  # no before: newest


@pytest.mark.parametrize("before", ["abc", "0", "-1", "1.5", "\u0663"])
def test_a_transcript_page_refuses_a_bad_before_with_a_clear_message(
    queued_run: Run, operator: User, before: str
) -> None:
    url = reverse("runs:transcript", args=[queued_run.pk])
    response = client_for(operator).get(url, {"before": before})
    assert response.status_code == 400
    assert "before must be a whole number of 1 or more" in response.content.decode()


def test_the_transcript_of_a_missing_run_is_404(operator: User) -> None:
    response = client_for(operator).get(reverse("runs:transcript", args=[999_999]))
    assert response.status_code == 404
