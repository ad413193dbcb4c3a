"""The runs list's filter form: it only parses the query string; ``selectors.run_search`` reads."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from runs.models import RunStatus
from runs.planning.options import PLANNERS
from runs.selectors import HAND_WRITTEN

SEARCH_MAX = 100


class RunFilterForm(forms.Form):
    """Status, planner, submitter, creation date range and free text; every field optional."""

    q = forms.CharField(
        required=False,
        max_length=SEARCH_MAX,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "title or run #"}),
    )
    status = forms.ChoiceField(
        required=False, choices=[("", "any status"), *[(s, s) for s in RunStatus.values]]
    )
    planner = forms.ChoiceField(
        required=False,
        choices=[("", "any planner"), (HAND_WRITTEN, "hand-written"), *[(p, p) for p in PLANNERS]],
    )
    submitter = forms.CharField(required=False, max_length=150, label="Submitted by")
    created_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    created_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("created_from"), cleaned.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> dict[str, Any]:
        """``run_search`` arguments from the valid fields only: a bad field is reported, never a 500.

        Dates are whole days in the server's time zone, the end day included.
        """
        data = getattr(self, "cleaned_data", {})

        def value(name: str) -> Any:
            return None if name in self.errors else data.get(name) or None

        start, end = value("created_from"), value("created_to")
        status = value("status")
        chosen = {
            "text": value("q"),
            "statuses": [status] if status else None,
            "submitter": value("submitter"),
            "planner": value("planner"),
            "created_after": _day_start(start) if start else None,
            "created_before": _day_start(end + timedelta(days=1)) if end else None,
        }
        return {name: given for name, given in chosen.items() if given is not None}


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())
