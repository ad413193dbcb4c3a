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


@dataclass(frozen=True)
class PlannerOptions:
    planner: str
    model: str = ""
    mode: str = "auto"
    temperature: float | None = None
    max_tokens: int = 4096
    max_replans: int = 3
    repair_rounds: int = 2

    @property
    def uses_llm(self) -> bool:
        return self.planner in (*LLM_PROVIDERS, "chain")

    def check(self) -> PlannerOptions:
        """Return self, or raise PlannerOptionsError naming the bad option."""
        if self.planner not in PLANNERS:
            raise PlannerOptionsError(
                f"unknown planner {self.planner!r}; choose one of {', '.join(PLANNERS)}"
            )
        if self.mode not in MODES:
            raise PlannerOptionsError(
                f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}"
            )
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise PlannerOptionsError("temperature must be between 0 and 2")
        if not 1 <= self.max_tokens <= 200_000:
            raise PlannerOptionsError("max_tokens must be between 1 and 200000")
        if not 0 <= self.max_replans <= 20:
            raise PlannerOptionsError("max_replans must be between 0 and 20")
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
    )
