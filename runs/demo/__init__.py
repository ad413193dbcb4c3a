"""The offline demo: its tools file, its plans, and its logins.

``manage.py seed_demo`` loads it; the new-run page offers the plans.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

DEMO_DIR = Path(__file__).resolve().parent
TOOLS_FILE = DEMO_DIR / "tools.yaml"
PLANS_DIR = DEMO_DIR / "plans"
PASSWORD_ENV = "PLANNERWEB_DEMO_PASSWORD"


@dataclass(frozen=True)
class DemoUser:
    username: str
    group: str | None
    staff: bool
    does: str


DEMO_USERS = (
    DemoUser("operator", "operators", False, "submits and cancels runs"),
    DemoUser("reviewer", "reviewers", False, "watches runs and reviews plans"),
    DemoUser("admin", None, True, "everything, plus the tool registry in /admin/"),
)


def demo_password(username: str) -> str:
    """``PLANNERWEB_DEMO_PASSWORD`` when set, else the username itself."""
    return os.environ.get(PASSWORD_ENV) or username


def demo_password_is_username() -> bool:
    return not os.environ.get(PASSWORD_ENV)


@dataclass(frozen=True)
class DemoPlan:
    name: str  # the file name without .yaml, e.g. "deploy-broken"
    goal: str
    text: str


def demo_plans() -> list[DemoPlan]:
    """The plans in ``runs/demo/plans/``, by file name."""
    plans = []
    for path in sorted(PLANS_DIR.glob("*.yaml"), key=lambda p: p.stem):
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
        goal = data.get("goal", "") if isinstance(data, dict) else ""
        plans.append(DemoPlan(name=path.stem, goal=str(goal or path.stem), text=text))
    return plans


def demo_plan(name: str) -> DemoPlan | None:
    return next((p for p in demo_plans() if p.name == name), None)
