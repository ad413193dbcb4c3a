"""``manage.py seed_demo [--with-runs]``: the demo users, tools and playbooks that are missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from runs.demo import (
    DEMO_USERS,
    TOOLS_FILE,
    demo_password,
    demo_password_is_username,
    demo_plan,
    demo_plans,
)
from runs.lifecycle.submit import run_submit_plan
from runs.models import Playbook, Run
from runs.permissions import ROLE_GROUPS
from runs.planning.providers.playbook import playbook_from_plan
from runs.planning.schema import parse_plan_text
from runs.tools.yaml_io import ToolsYamlError, tools_import

Seeded = tuple[list[str], list[str]]  # names created, names that existed and were left alone
# The demo plans --with-runs submits, each with the planner that replans it (None: rolls back).
DEMO_RUNS: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("migration", None),
    ("tests-fallback", {"planner": "playbook", "max_replans": 1}),
)


def _seeded(what: str, seeded: Seeded) -> str:
    """One part of the summary: what was created and what already existed."""
    created, kept = seeded
    return f"{what}: {len(created)} created, {len(kept)} left as they were"


class Command(BaseCommand):
    help = (
        "Create the demo users (operator, reviewer, admin), tools (runs/demo/tools.yaml) and "
        "playbooks that do not exist yet, and the sandbox folder; existing ones are left as "
        "they are, so it is safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--with-runs",
            action="store_true",
            help="also submit the demo migration plan, and a plan that replans offline, as the "
            "operator when no run exists yet",
        )

    def handle(self, *args: Any, **options: Any) -> None:

        users = self._users()
        try:
            text = TOOLS_FILE.read_text(encoding="utf-8")
            report = tools_import(text=text, missing_only=True)
        except ToolsYamlError as exc:
            raise CommandError(str(exc)) from exc
        tools = (report.created, report.kept)
        sandbox = Path(settings.PLANNERWEB_SANDBOX_DIR)
        sandbox.mkdir(parents=True, exist_ok=True)
        playbooks = self._playbooks()

        self.stdout.write(
            f"{_seeded('users', users)}; {_seeded('tools', tools)}; "
            f"{_seeded('playbooks', playbooks)}; sandbox: {sandbox}"
        )
        if users[1] or tools[1] or playbooks[1]:
            self.stdout.write(
                "existing demo users, tools and playbooks were left as they are "
                "(manage.py tools_import runs/demo/tools.yaml resets the demo tools)"
            )
        if options["with_runs"]:
            self._first_run()
        self._print_logins()

    @transaction.atomic
    def _users(self) -> Seeded:
        groups = {name: Group.objects.get_or_create(name=name)[0] for name in ROLE_GROUPS}
        User = get_user_model()
        created, kept = [], []
        for demo in DEMO_USERS:
            if User.objects.filter(username=demo.username).exists():
                kept.append(demo.username)  # existing accounts (and changed passwords) stay
                continue
            user = User.objects.create_user(
                demo.username, f"{demo.username}@example.test", demo_password(demo.username)
            )
            user.is_staff = user.is_superuser = demo.staff
            user.save(update_fields=["is_staff", "is_superuser"])
            if demo.group:
                user.groups.add(groups[demo.group])
            created.append(demo.username)
        return created, kept

    @transaction.atomic
    def _playbooks(self) -> Seeded:
        """The demo plans that work become playbooks for the offline planner (broken ones don't)."""

        created, kept = [], []
        for plan in demo_plans():
            name = f"demo-{plan.name}"
            if plan.name.endswith("-broken"):
                continue
            if Playbook.objects.filter(name=name).exists():
                kept.append(name)  # an operator may have edited it
                continue
            playbook_from_plan(name=name, task_text=plan.goal, document=parse_plan_text(plan.text))
            created.append(name)
        return created, kept

    def _first_run(self) -> None:
        """The migration plan, and a plan that replans offline (its failing step's fallback)."""
        if Run.objects.exists():
            self.stdout.write("runs: some exist already, none submitted")
            return
        operator = get_user_model().objects.filter(username="operator").first()
        for name, replanner in DEMO_RUNS:
            plan = demo_plan(name)
            if plan is None:
                raise CommandError(f"runs/demo/plans/{name}.yaml is missing")
            run = run_submit_plan(
                title=plan.goal,
                document=parse_plan_text(plan.text),
                submitted_by=operator,
                replanner=replanner,
            )
            self.stdout.write(f"runs: submitted run {run.pk} ({run.status}): {plan.goal}")

    def _print_logins(self) -> None:
        self.stdout.write("demo logins:")
        for demo in DEMO_USERS:
            password = demo.username if demo_password_is_username() else "$PLANNERWEB_DEMO_PASSWORD"
            self.stdout.write(f"  {demo.username} / {password}  ({demo.does})")
