"""In/Out schemas of the tasks resource: submitting a hand-written plan or a task for a planner."""

from __future__ import annotations

from typing import Any, Literal

from ninja import Field
from pydantic import ConfigDict

from runs.api.inputs import BudgetsIn
from runs.lifecycle.intake import MAX_PARALLEL_MAX, MAX_PARALLEL_MIN


class TaskIn(BudgetsIn):
    """A task: with a hand-written ``plan``, or without one and with planner options to be planned."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "Look at the schema",
                    "plan": {
                        "goal": "Read the schema",
                        "steps": [
                            {"id": "read", "action": "read_schema", "params": {"db": "prod.db"}}
                        ],
                    },
                },
                {
                    "title": "Back up the database, then migrate it",
                    "planner": "openai",
                    "mode": "iterative",
                    "max_steps": 6,
                },
            ]
        }
    )

    title: str = Field(
        "", max_length=200, description="Defaults to the plan's goal when left empty."
    )
    description: str = Field("", max_length=10_000)
    max_parallel: int | None = Field(
        None,
        ge=MAX_PARALLEL_MIN,
        le=MAX_PARALLEL_MAX,
        description="How many independent steps may run at the same time.",
    )
    plan: str | dict[str, Any] | list[Any] | None = Field(
        None,
        description=(
            "The plan: YAML or JSON text, or the JSON document itself "
            "({goal, steps: [{id, action, params, depends_on}], rollback}). "
            "Leave it out and give planner options to have a planner make it. With a plan, "
            "`planner` (and `model`, `temperature`, `max_tokens`, `max_replans`) names the "
            "planner that replans it when a step fails; without, a failure rolls it back."
        ),
    )
    # Planner options (a task without a plan, or the replanner of a hand-written one); each
    # one left out takes the deployment's setting.
    planner: str | None = Field(
        None,
        max_length=30,
        description="openai, anthropic, compatible, chain or playbook.",
        json_schema_extra={"enum": ["openai", "anthropic", "compatible", "chain", "playbook"]},
    )
    model: str | None = Field(None, max_length=100, description="Empty: the provider's default.")
    mode: str | None = Field(
        None,
        max_length=10,
        description="auto (upfront or direct), upfront, iterative (one model call per step), direct.",
        json_schema_extra={"enum": ["auto", "upfront", "iterative", "direct"]},
    )
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=200_000)
    max_replans: int | None = Field(None, ge=0, le=20)
    max_steps: int | None = Field(None, ge=1, le=100, description="Iterative mode: the most steps.")
    # Supervisor budgets (BudgetsIn): each left out takes the deployment's default.
    retain_days: int | None = Field(
        None,
        ge=1,
        le=36_500,
        description="Keep this task's finished runs this many days (within the deployment's "
        "bounds); left out: the deployment's retention.",
    )

    confirm_plan: Literal["auto", "always", "never"] | None = Field(
        None,
        description="A task for a planner: show its plan to you before it runs. auto (when the "
        "planner is unsure or the plan uses a sensitive tool), always or never; left out: "
        "the deployment's setting. Not used with a hand-written plan.",
    )

    def planner_options(self) -> dict[str, Any]:
        """The planner options given (those left out are absent)."""
        names = (
            "planner",
            "model",
            "mode",
            "temperature",
            "max_tokens",
            "max_replans",
            "max_steps",
        )
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}
