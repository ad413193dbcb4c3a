"""The runs list's filter form: it only parses the query string; ``selectors.run_search`` reads."""

from __future__ import annotations

from typing import Any

from django import forms

from runs.models import RunStatus

SEARCH_MAX = 100


class RunFilterForm(forms.Form):
    """Status, submitter, creation date range and free text; every field optional."""

    q = forms.CharField(
        required=False,
        max_length=SEARCH_MAX,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "title or run #"}),
    )
    status = forms.ChoiceField(
        required=False, choices=[("", "any status"), *[(s, s) for s in RunStatus.values]]
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
        """The valid filters only: a bad field is reported on the page and ignored, never a 500."""
        data = getattr(self, "cleaned_data", {})
        return {
            name: data[name]
            for name in ("q", "status", "submitter", "created_from", "created_to")
            if data.get(name) not in (None, "") and name not in self.errors
        }
