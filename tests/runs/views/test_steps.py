"""The step page: parameters, output cut and downloadable, failed attempts, the step's events."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from runs.events import StepRetrying, StepStatusChanged
from runs.models import Run, Step
from runs.statemachine import NewEvent, append_events
from runs.views.steps import OUTPUT_SHOWN
from tests.runs.views.conftest import client_for

pytestmark = pytest.mark.django_db


def _step(run: Run) -> Step:
    return run.steps.filter(phase="main").order_by("position").first()  # type: ignore[return-value]


def test_a_steps_page_shows_its_output_cut_its_failed_attempts_and_only_its_events(
    queued_run: Run, reviewer: User
) -> None:
    step, other = run_steps = list(queued_run.steps.filter(phase="main").order_by("position"))
    long_out = "line <b>\n" * (OUTPUT_SHOWN // 5)
    Step.objects.filter(pk=step.pk).update(
        status="failed",
        attempts=2,
        error="exit 3",
        result={"exit_code": 3, "stdout": long_out, "stderr": "boom"},
    )
    append_events(
        queued_run.pk,
        [
            NewEvent(
                "executor",
                StepRetrying(
                    step_id=step.pk,
                    step=step.key,
                    attempt=2,
                    delay_seconds=0.1,
                    error="first try timed out",
                ),
            ),
            NewEvent(
                "executor",
                StepStatusChanged(
                    step_id=step.pk,
                    step=step.key,
                    from_status="running",
                    to_status="failed",
                    attempt=2,
                    error="exit 3",
                ),
            ),
            NewEvent(
                "executor",
                StepStatusChanged(
                    step_id=other.pk, step=other.key, from_status="pending", to_status="skipped"
                ),
            ),
        ],
    )
    url = reverse("runs:step", args=[queued_run.pk, step.pk])
    page = client_for(reviewer).get(url).content.decode()
    assert "line &lt;b&gt;" in page and "<b>" not in page.split("data-stream=")[1][:200]
    cut = len(long_out) - OUTPUT_SHOWN
    assert f'data-stream-cut="stdout">{cut} more characters not shown' in page
    assert 'data-stream="stderr">boom</pre>' in page
    # The result block leaves out the streams it already shows.
    assert "&quot;exit_code&quot;: 3" in page and "&quot;stdout&quot;" not in page
    assert '<li value="1"><pre>first try timed out</pre></li>' in page
    assert '<li value="2"><pre>exit 3</pre></li>' in page
    assert f"{step.key} running → failed (attempt 2): exit 3" in page
    assert f"{other.key} pending → skipped" not in page  # another step's event
    assert len(run_steps) == 2

    download = client_for(reviewer).get(
        reverse("runs:step_output", args=[queued_run.pk, step.pk, "stdout"])
    )
    assert download.status_code == 200 and download.content.decode() == long_out
    assert download["Content-Type"].startswith("text/plain")
    assert "attachment" in download["Content-Disposition"]


def test_the_step_page_refuses_other_runs_steps_unknown_streams_and_outsiders(
    queued_run: Run, reviewer: User, outsider: User, operator: User
) -> None:
    step = _step(queued_run)
    client = client_for(reviewer)
    assert client.get(reverse("runs:step", args=[queued_run.pk + 1, step.pk])).status_code == 404
    out = reverse("runs:step_output", args=[queued_run.pk, step.pk, "stdin"])
    assert client.get(out).status_code == 404
    no_output = reverse("runs:step_output", args=[queued_run.pk, step.pk, "stdout"])
    assert client.get(no_output).status_code == 404  # a pending step has none yet
    url = reverse("runs:step", args=[queued_run.pk, step.pk])
    assert client_for(outsider).get(url).status_code == 403
    assert client_for(None).get(url).status_code == 302
    assert client.post(url).status_code == 405
    page = client_for(operator).get(reverse("runs:detail", args=[queued_run.pk])).content.decode()
    assert f'href="{url}" data-step-link' in page
