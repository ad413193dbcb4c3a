"""Planner options: the deployment defaults (settings) overridden per task (form, CLI)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings

from runs.planning.providers import LLM_PROVIDERS

MODES = ("auto", "upfront", "iterative", "direct")
# Offline planners next to the LLM providers; "chain" is the configured ensemble.
PLANNERS = (*LLM_PROVIDERS, "chain", "playbook", "manual")


class PlannerOptionsError(ValueError):
    """A planner option that cannot work (unknown planner or mode, out-of-range number)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field  # the option at fault, for inline form and API errors


@dataclass(frozen=True)
class PlannerOptions:
    planner: str
    model: str = ""
    mode: str = "auto"
    temperature: float | None = None
    max_tokens: int = 4096
    max_replans: int = 3
    repair_rounds: int = 2
    max_steps: int = 20  # iterative mode: the most steps (one model call each)

    @property
    def uses_llm(self) -> bool:
        return self.planner in (*LLM_PROVIDERS, "chain")

    def check(self) -> PlannerOptions:
        """Return self, or raise PlannerOptionsError naming the bad option."""
        if self.planner not in PLANNERS:
            raise PlannerOptionsError(
                f"unknown planner {self.planner!r}; choose one of {', '.join(PLANNERS)}",
                field="planner",
            )
        if self.mode not in MODES:
            raise PlannerOptionsError(
                f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}", field="mode"
            )
        ranges = (
            ("temperature", self.temperature, 0, 2),
            ("max_tokens", self.max_tokens, 1, 200_000),
            ("max_replans", self.max_replans, 0, 20),
            ("max_steps", self.max_steps, 1, 100),
        )
        for name, value, low, high in ranges:
            if value is not None and not low <= value <= high:
                raise PlannerOptionsError(f"{name} must be between {low} and {high}", field=name)
        if self.mode == "iterative" and not self.uses_llm:
            raise PlannerOptionsError(
                f"iterative mode asks a model for each step; the {self.planner} planner "
                "cannot: choose a model provider or another mode",
                field="mode",
            )
        return self


def default_options(**overrides: Any) -> PlannerOptions:
    """Settings, with any non-empty override applied, checked."""
    options = PlannerOptions(
        planner=settings.PLANNERWEB_PLANNER,
        model=settings.PLANNERWEB_PLANNER_MODEL,
        mode=settings.PLANNERWEB_PLANNER_MODE,
        temperature=settings.PLANNERWEB_PLANNER_TEMPERATURE,
        max_tokens=settings.PLANNERWEB_PLANNER_MAX_TOKENS,
        max_replans=settings.PLANNERWEB_MAX_REPLANS,
        repair_rounds=settings.PLANNERWEB_PLANNER_REPAIR_ROUNDS,
        max_steps=settings.PLANNERWEB_ITERATIVE_MAX_STEPS,
    )
    given = {k: v for k, v in overrides.items() if v not in (None, "")}
    return replace(options, **given).check()


def task_options(task: Any) -> PlannerOptions:
    """The options a task was submitted with, defaults filling what it left blank."""
    return default_options(
        planner=task.planner,
        model=task.model,
        mode=task.mode,
        temperature=task.temperature,
        max_tokens=task.max_tokens,
        max_replans=task.max_replans,
        max_steps=getattr(task, "max_steps", None),
    )
