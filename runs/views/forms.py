"""Forms for the run pages: they parse input; services decide what happens."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings

from runs.execution.budgets import BUDGET_FIELDS
from runs.lifecycle.intake import MAX_PARALLEL_MAX, MAX_PARALLEL_MIN
from runs.lifecycle.retention import RetentionError, retain_days_check
from runs.models import ConfirmPlan
from runs.planning.availability import (
    MODEL_OPTIONS,
    PlannerStatus,
    planner_missing,
    planner_statuses,
)
from runs.planning.options import MODES, PLANNERS, PlannerOptionsError, default_options
from runs.planning.providers import LLM_PROVIDERS
from runs.planning.schema import PlanSyntaxError, goal_title, parse_plan_text
from runs.planning.words import steps_in_words


class BudgetFields(forms.Form):
    """Optional per-task budgets; empty takes the deployment's default (shown as the placeholder)."""

    budget_max_steps = forms.IntegerField(
        required=False, min_value=1, max_value=1_000_000, label="Max steps"
    )
    budget_max_tokens = forms.IntegerField(
        required=False, min_value=1, max_value=2_000_000_000, label="Max tokens"
    )
    budget_max_cost = forms.DecimalField(
        required=False, min_value=0, max_digits=12, decimal_places=6, label="Max cost ($)"
    )
    budget_max_wall_seconds = forms.IntegerField(
        required=False, min_value=1, max_value=2_000_000_000, label="Max wall time (s)"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        defaults = {
            "budget_max_steps": settings.PLANNERWEB_BUDGET_MAX_STEPS,
            "budget_max_tokens": settings.PLANNERWEB_BUDGET_MAX_TOKENS,
            "budget_max_cost": settings.PLANNERWEB_BUDGET_MAX_COST,
            "budget_max_wall_seconds": settings.PLANNERWEB_BUDGET_MAX_WALL_SECONDS,
        }
        for name, value in defaults.items():
            self.fields[name].widget.attrs["placeholder"] = (
                f"default: {value}" if value else "default: no limit"
            )

    def budgets(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name in BUDGET_FIELDS}

    def budget_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in BUDGET_FIELDS]

    def budget_errors(self) -> bool:
        return any(name in self.errors for name in BUDGET_FIELDS)

    def option_fields(self) -> list[forms.BoundField]:
        """Every field but the budgets (the page shows those in a fieldset of their own)."""
        return [field for field in self if field.name not in BUDGET_FIELDS]


class RetentionField(forms.Form):
    """The task's own whole-run retention, within the bounds the admin set (empty: the setting)."""

    retain_days = forms.IntegerField(
        required=False, label="Keep the finished run (days)", widget=forms.NumberInput()
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        low, high = (
            settings.PLANNERWEB_RETAIN_RUNS_MIN_DAYS,
            settings.PLANNERWEB_RETAIN_RUNS_MAX_DAYS,
        )
        field = cast(forms.IntegerField, self.fields["retain_days"])
        field.min_value, field.max_value = low, high
        field.widget.attrs.update({"min": low, "max": high})
        days = settings.PLANNERWEB_RETAIN_RUNS_DAYS
        field.widget.attrs["placeholder"] = f"default: {days}" if days else "default: forever"
        field.help_text = f"From {low} to {high} days; empty: the deployment's retention."

    def clean_retain_days(self) -> int | None:
        days = self.cleaned_data.get("retain_days")
        if days is None:
            return None
        try:
            return retain_days_check(days)
        except RetentionError as exc:  # bounds changed between page and post
            raise forms.ValidationError(str(exc), code="out_of_bounds") from exc


class PlannerSelect(forms.Select):
    """The planner choice: a planner missing its key or URL is offered as unavailable."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.missing: dict[str, str] = {}

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        if self.missing.get(str(value)):
            option["attrs"]["data-unavailable"] = self.missing[str(value)]
            option["label"] = f"{option['label']} (unavailable)"
        if str(value) in MODEL_PLANNERS:
            option["attrs"]["data-model-options"] = "1"
        return option


MODEL_PLANNERS = (*LLM_PROVIDERS, "chain")


class NewRunForm(BudgetFields, RetentionField):
    """A hand-written plan to run: parsed here, checked against the tool registry by the view."""

    title = forms.CharField(
        max_length=200, required=False, help_text="Leave empty to use the plan's goal."
    )
    max_parallel = forms.IntegerField(
        min_value=MAX_PARALLEL_MIN,
        max_value=MAX_PARALLEL_MAX,
        required=False,
        help_text="How many independent steps may run at the same time.",
    )
    plan = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code"}),
        strip=False,
        help_text="YAML or JSON: {goal, steps: [{id, action, params, depends_on}], rollback}.",
    )
    replanner = forms.ChoiceField(
        required=False,
        label="Replan with",
        help_text="When a step fails, this planner proposes a new plan version "
        "(playbook: the failed step's declared fallback). None: roll back as written.",
    )
    max_replans = forms.IntegerField(required=False, min_value=0, max_value=20)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["max_parallel"].initial = settings.PLANNERWEB_DEFAULT_MAX_PARALLEL
        cast(forms.ChoiceField, self.fields["replanner"]).choices = [
            ("", "none"),
            *[(p, p) for p in PLANNERS if p != "manual"],
        ]
        self.fields["max_replans"].widget.attrs["placeholder"] = (
            f"default: {settings.PLANNERWEB_MAX_REPLANS}"
        )
        self.document: Any = None
        # Validation problems against the tools, each {"path", "code", "message"}; set by the view.
        self.plan_problems: list[dict[str, str]] = []

    def clean_plan(self) -> str:
        text: str = self.cleaned_data["plan"]
        if steps_in_words(text) is not None:
            raise forms.ValidationError(
                "These are steps in words, not a plan: the check maps each to a tool and "
                "proposes the plan to run.",
                code="steps_in_words",
            )
        try:
            self.document = parse_plan_text(text)
        except PlanSyntaxError as exc:
            raise forms.ValidationError(str(exc), code="syntax") from exc
        return text

    def replanner_options(self) -> dict[str, Any]:
        """The planner that replans this plan, as ``run_submit_plan(replanner=...)`` takes it."""
        if not self.cleaned_data.get("replanner"):
            return {}
        return {
            "planner": self.cleaned_data["replanner"],
            "max_replans": self.cleaned_data.get("max_replans"),
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("max_replans") is not None and not cleaned.get("replanner"):
            self.add_error("max_replans", "Choose the planner that replans first.")
        if cleaned.get("replanner") and (missing := planner_missing(cleaned["replanner"])):
            self.add_error(
                "replanner", f"The {cleaned['replanner']} planner is not available here: {missing}."
            )
        if not cleaned.get("title") and "plan" in cleaned:
            title = goal_title(self.document)
            if title:
                cleaned["title"] = title
            else:
                self.add_error("title", "Give a title (the plan has no goal to use).")
        return cleaned

    def add_plan_problems(self, problems: list[dict[str, str]]) -> None:
        """Record the plan's problems (from validation) so the form shows each one inline."""
        self.plan_problems = problems
        count = len(problems)
        self.add_error(
            "plan",
            forms.ValidationError(
                f"The plan has {count} problem{'s' if count != 1 else ''}; nothing was run.",
                code="invalid_plan",
            ),
        )


class NewTaskForm(BudgetFields, RetentionField):
    """A task for a planner: the words, and planner options defaulting to the deployment's."""

    prefix = "task"  # it shares the new-run page with NewRunForm: distinct ids and names
    title = forms.CharField(max_length=200)
    description = forms.CharField(
        required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 4})
    )
    planner = forms.ChoiceField(
        widget=PlannerSelect, help_text="A model provider, the chain, or the playbook."
    )
    mode = forms.ChoiceField(
        help_text="auto picks upfront or direct; iterative asks the model for one step at a time."
    )
    # Only a model provider (or the chain) takes these; the page hides them for the others.
    model = forms.CharField(
        max_length=100, required=False, help_text="Empty: the provider's default model."
    )
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    max_tokens = forms.IntegerField(
        required=False, min_value=1, max_value=200_000, label="Tokens per model call"
    )
    max_steps = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100,
        label="Steps (iterative mode)",
        help_text="The most steps, one model call each.",
    )
    max_replans = forms.IntegerField(required=False, min_value=0, max_value=20)
    max_parallel = forms.IntegerField(
        required=False,
        min_value=MAX_PARALLEL_MIN,
        max_value=MAX_PARALLEL_MAX,
        label="Max parallel steps",
    )
    confirm_plan = forms.ChoiceField(
        required=False,
        label="Confirm the plan before it runs",
        help_text="auto: when the planner is unsure or the plan uses a sensitive tool.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:

        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["planner"]).choices = [
            (p, p) for p in PLANNERS if p != "manual"
        ]
        planner_field = cast(forms.ChoiceField, self.fields["planner"])
        cast(PlannerSelect, planner_field.widget).missing = {
            p.name: p.missing for p in self.planner_statuses()
        }
        cast(forms.ChoiceField, self.fields["mode"]).choices = [(m, m) for m in MODES]
        cast(forms.ChoiceField, self.fields["confirm_plan"]).choices = [
            ("", f"default ({settings.PLANNERWEB_CONFIRM_PLANS})"),
            *[(c.value, c.value) for c in ConfirmPlan],
        ]
        defaults = {
            "planner": settings.PLANNERWEB_PLANNER,
            "model": settings.PLANNERWEB_PLANNER_MODEL,
            "mode": settings.PLANNERWEB_PLANNER_MODE,
            "temperature": settings.PLANNERWEB_PLANNER_TEMPERATURE,
            "max_tokens": settings.PLANNERWEB_PLANNER_MAX_TOKENS,
            "max_replans": settings.PLANNERWEB_MAX_REPLANS,
            "max_steps": settings.PLANNERWEB_ITERATIVE_MAX_STEPS,
            "max_parallel": settings.PLANNERWEB_DEFAULT_MAX_PARALLEL,
        }
        for name, value in defaults.items():
            self.fields[name].initial = value

    def clean(self) -> dict[str, Any]:
        """The options together (iterative mode needs a model): checked as the service will."""

        cleaned = super().clean() or {}
        planner = cleaned.get("planner")
        if planner and planner not in MODEL_PLANNERS:
            # Options the planner does not take are not sent for it (the page hides them).
            for name in MODEL_OPTIONS:
                cleaned[name] = None
        if planner and (missing := planner_missing(planner)):
            self.unavailable = True
            self.add_error(
                "planner",
                forms.ValidationError(
                    f"The {planner} planner is not available here: {missing}.",
                    code="unavailable",
                ),
            )
        if self.errors:
            return cleaned
        try:
            default_options(**{k: cleaned.get(k) for k in self.OPTIONS})
        except PlannerOptionsError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
        return cleaned

    def planner_statuses(self) -> list[PlannerStatus]:
        return planner_statuses(tuple(p for p in PLANNERS if p != "manual"))

    def model_option_names(self) -> tuple[str, ...]:
        return MODEL_OPTIONS

    field_order = [
        "title",
        "description",
        "planner",
        "mode",
        "model",
        "temperature",
        "max_tokens",
        "max_steps",
        "max_replans",
        "max_parallel",
        "confirm_plan",
        "retain_days",
    ]
    unavailable = False  # set by clean: the chosen planner lacks its key or URL
    OPTIONS = ("planner", "model", "mode", "temperature", "max_tokens", "max_replans", "max_steps")
