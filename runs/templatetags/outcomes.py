"""Progress by outcome: one bar and one count for a run, the same on the list, the run page and the queue.

A run's bar has a segment per step outcome (``runs.selectors.OUTCOME_ORDER``), so a
rolled-back, cancelled or failed run never shows a full green bar; its count is
"finished/total", finished being every status in ``STEP_FINISHED``, as the API says.
"""

from __future__ import annotations

from html import escape

from django import template
from django.utils.safestring import SafeString, mark_safe

from runs.selectors import OUTCOME_ORDER
from runs.statemachine import STEP_FINISHED

register = template.Library()

OUTCOME_LABEL = {s: str(s).replace("_", " ") for s in OUTCOME_ORDER}


def outcome_text(counts: dict[str, int]) -> str:
    """``"6 steps: 2 succeeded, 1 failed, 3 rolled back"`` (the bar's accessible name)."""
    total = sum(counts.values())
    if not total:
        return "no steps"
    parts = ", ".join(f"{n} {OUTCOME_LABEL.get(s, s)}" for s, n in counts.items())
    return f"{total} step{'s' if total != 1 else ''}: {parts}"


@register.filter(is_safe=True)
def outcome_bar(counts: dict[str, int] | None) -> SafeString:
    """A bar with a segment per outcome, widths by count; empty (grey) for a run without steps."""
    counts = counts or {}
    segments = "".join(
        f'<span class="seg seg-{escape(s)}" data-outcome="{escape(s)}" data-count="{n}"'
        f' style="flex-grow:{n}"></span>'
        for s, n in counts.items()
    )
    label = escape(outcome_text(counts))
    return mark_safe(
        f'<span class="outcome-bar" role="img" aria-label="{label}" title="{label}"'
        f" data-outcome-bar>{segments}</span>"
    )


@register.filter
def finished_count(counts: dict[str, int] | None) -> str:
    """``"finished/total"`` of ``counts``, the one count shown beside every bar."""
    counts = counts or {}
    done = sum(n for s, n in counts.items() if s in STEP_FINISHED)
    return f"{done}/{sum(counts.values())}"
