"""``manage.py seed_demo [--with-runs]``: demo users, the demo toolset and its sandbox; idempotent."""

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
from runs.models import Run
from runs.permissions import ROLE_GROUPS
from runs.planning.providers.playbook import playbook_from_plan
from runs.planning.schema import parse_plan_text
from runs.tools.yaml_io import ToolsYamlError, tools_import


class Command(BaseCommand):
    help = (
        "Create the demo users (operator, reviewer, admin), import runs/demo/tools.yaml and "
        "create the sandbox folder; safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--with-runs",
            action="store_true",
            help="also submit the demo migration plan as the operator when no run exists yet",
        )

    def handle(self, *args: Any, **options: Any) -> None:

        created_users = self._users()
        try:
            report = tools_import(text=TOOLS_FILE.read_text(encoding="utf-8"), replace=False)
        except ToolsYamlError as exc:
            raise CommandError(str(exc)) from exc
        sandbox = Path(settings.PLANNERWEB_SANDBOX_DIR)
        sandbox.mkdir(parents=True, exist_ok=True)
        playbooks = self._playbooks()

        self.stdout.write(
            f"users: {', '.join(created_users) or 'none'} created; "
            f"tools: {len(report.created)} created, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged; playbooks: {playbooks}; sandbox: {sandbox}"
        )
        if options["with_runs"]:
            self._first_run()
        self._print_logins()

    @transaction.atomic
    def _users(self) -> list[str]:
        groups = {name: Group.objects.get_or_create(name=name)[0] for name in ROLE_GROUPS}
        User = get_user_model()
        created = []
        for demo in DEMO_USERS:
            if User.objects.filter(username=demo.username).exists():
                continue  # leave existing accounts (and changed passwords) alone
            user = User.objects.create_user(
                demo.username, f"{demo.username}@example.test", demo_password(demo.username)
            )
            user.is_staff = user.is_superuser = demo.staff
            user.save(update_fields=["is_staff", "is_superuser"])
            if demo.group:
                user.groups.add(groups[demo.group])
            created.append(demo.username)
        return created

    @transaction.atomic
    def _playbooks(self) -> int:
        """The demo plans that work become playbooks for the offline planner (broken ones don't)."""

        count = 0
        for plan in demo_plans():
            if plan.name.endswith("-broken"):
                continue
            playbook_from_plan(
                name=f"demo-{plan.name}", task_text=plan.goal, document=parse_plan_text(plan.text)
            )
            count += 1
        return count

    def _first_run(self) -> None:

        if Run.objects.exists():
            self.stdout.write("runs: some exist already, none submitted")
            return
        plan = demo_plan("migration")
        if plan is None:
            raise CommandError("runs/demo/plans/migration.yaml is missing")
        operator = get_user_model().objects.filter(username="operator").first()
        run = run_submit_plan(
            title=plan.goal, document=parse_plan_text(plan.text), submitted_by=operator
        )
        self.stdout.write(f"runs: submitted run {run.pk} ({run.status}): {plan.goal}")

    def _print_logins(self) -> None:
        self.stdout.write("demo logins:")
        for demo in DEMO_USERS:
            password = demo.username if demo_password_is_username() else "$PLANNERWEB_DEMO_PASSWORD"
            self.stdout.write(f"  {demo.username} / {password}  ({demo.does})")
