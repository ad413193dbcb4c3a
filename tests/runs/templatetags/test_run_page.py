"""The run page's row filters: escaping, what run.js reads, rounding as floatformat does."""

from __future__ import annotations

import pytest

from runs.models import Step


def test_the_step_rows_escape_every_value_and_keep_what_run_js_reads() -> None:
    from datetime import UTC, datetime, timedelta

    from runs.templatetags.run_page import step_rows
    from runs.views.detail import _step_row

    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    step = Step(
        pk=7,
        key="k<1>",
        phase="main",
        position=0,
        tool_name="t&t",
        params={"q": "<x>"},
        depends_on=["a'", "b"],
        description='say "hi"',
        status="failed",
        attempts=2,
        result={"r": 1},
        error="<boom>",
        started_at=at,
        finished_at=at + timedelta(seconds=1.125),
        verdict="fail",
        verdict_reason="<why>",
    )
    html = step_rows([_step_row(step)])
    assert html.startswith(
        '<tr data-step-id="7" data-step-key="k&lt;1&gt;" data-phase="main" data-status="failed"'
        ' data-read-only="false" data-started-at="2026-01-02T03:04:05.678000+00:00"'
        ' data-finished-at="2026-01-02T03:04:06.803000+00:00">'
    )
    for cell in (
        '<td class="num">1</td>',
        '<div class="muted">say &quot;hi&quot;</div><div class="muted">after a&#x27;, b</div>',
        "<code>t&amp;t</code>",
        '<span class="mark">✗</span> <span class="label">failed</span>',
        '<span class="verdict verdict-fail">fail</span><div class="muted">&lt;why&gt;</div>',
        '<td class="num" data-step-attempts>2</td>',
        "<td data-step-started>03:04:05.678</td><td data-step-finished>03:04:06.803</td>",
        '<td class="num" data-step-took>1.125 s</td>',
        "&quot;q&quot;: &quot;&lt;x&gt;&quot;",
        '<details class="error" open><summary>error</summary><pre>&lt;boom&gt;</pre>',
    ):
        assert cell in html, cell
    idle = step_rows([_step_row(Step(pk=8, key="p", status="pending", params={}))])
    assert "data-started-at" not in idle and "<td data-step-verdict>—</td>" in idle
    assert '<td class="num" data-step-took>—</td>' in idle and "<summary>result" not in idle


@pytest.mark.parametrize("value", [0.0, 0.5, 1.5, 2.5, 31.4999, 180.5, 1234.5])
def test_graph_coordinates_are_rounded_as_floatformat_rounds_them(value: float) -> None:
    from django.template.defaultfilters import floatformat

    from runs.templatetags.run_page import _whole

    assert _whole(value) == floatformat(value, 0)


def test_run_times_and_durations_are_shown_to_the_millisecond() -> None:
    from datetime import UTC, datetime, timedelta

    from runs.templatetags.run_page import elapsed, precise_time

    at = datetime(2026, 1, 2, 3, 4, 5, 678900, tzinfo=UTC)
    assert precise_time(at) == "2026-01-02 03:04:05.678"
    assert elapsed(at, at + timedelta(milliseconds=412)) == "0.412 s"
    assert elapsed(at, at + timedelta(minutes=1, seconds=2.345)) == "1 min 02.345 s"
    assert elapsed(at, at + timedelta(hours=2, minutes=3, seconds=4.5)) == "2 h 03 min 04.500 s"
    assert elapsed(None, at) == "—" and precise_time(None) == "—"
