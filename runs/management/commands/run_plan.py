"""``manage.py run_plan plan.yaml --wait``: submit a hand-written plan from the command line."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.management.options import add_max_parallel, max_parallel_option
from runs.models import RunStatus
from runs.permissions import is_operator
from runs.planning.availability import PlannerUnavailable, planner_require
from runs.planning.options import PlannerOptionsError
from runs.planning.schema import PlanSyntaxError, goal_title, parse_plan_text
from runs.planning.validation import validate_with_registry
from runs.selectors import run_progress
from runs.statemachine import RUN_TERMINAL


class Command(BaseCommand):
    help = "Validate and submit a plan (YAML or JSON); with --wait, execute it here and follow it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("plan", help="path of a plan file (YAML or JSON), or - for stdin")
        parser.add_argument("--title", help="task title (default: the plan's goal or file name)")
        parser.add_argument("--wait", action="store_true", help="execute now and print live status")
        add_max_parallel(parser)
        parser.add_argument("--user", help="username to submit as (must be an operator)")
        parser.add_argument("--poll", type=float, default=0.1, help="status refresh, seconds")
        parser.add_argument(
            "--planner",
            help="the planner that proposes a new plan version when a step fails "
            "(e.g. playbook, openai); without it a failure rolls the plan back",
        )
        parser.add_argument("--model", help="the replanner's model (default: the provider's)")
        parser.add_argument(
            "--max-replans", type=int, default=None, help="at most this many replans"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Refused like the API: an option out of range, or a replanner that cannot plan here.
        max_parallel_option(options["max_parallel"])
        if options["planner"]:
            try:
                planner_require(options["planner"])
            except PlannerUnavailable as exc:
                raise CommandError(f"--planner: {exc}") from exc
        path = options["plan"]
        try:
            text = Path(path).read_text() if path != "-" else sys.stdin.read()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        try:
            document = parse_plan_text(text)
        except PlanSyntaxError as exc:
            raise CommandError(f"{path}: {exc}") from exc

        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None or not is_operator(user):
                raise CommandError(f"user {options['user']!r} does not exist or is not an operator")

        # Refused like the form and the API: an invalid plan creates nothing.
        validated = validate_with_registry(document)
        if not validated.is_valid:
            count = len(validated.problems)
            self.stderr.write(f"{path}: the plan has {count} problem{'s' * (count != 1)}:")
            for problem in validated.problems:
                self.stderr.write(f"  - {problem.path or '(plan)'}: {problem.message}")
            raise CommandError("plan refused; nothing was created", returncode=2)

        title = options["title"] or goal_title(document) or Path(path).stem
        replanner = {
            "planner": options["planner"],
            "model": options["model"],
            "max_replans": options["max_replans"],
        }
        try:
            run = run_submit_plan(
                title=title,
                document=document,
                submitted_by=user,
                max_parallel=options["max_parallel"],
                validated=validated,
                replanner=replanner,
            )
        except PlannerOptionsError as exc:
            raise CommandError(f"--{exc.field.replace('_', '-') or 'planner'}: {exc}") from exc

        self.stdout.write(f"run {run.pk} queued: {title}")
        if not options["wait"]:
            self.stdout.write("a worker will execute it (make run, or manage.py db_worker)")
            return

        errors: list[BaseException] = []

        def execute() -> None:
            from django.db import connection

            try:
                run_execute(run_id=run.pk)
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        thread = threading.Thread(target=execute, name="run-plan", daemon=True)
        thread.start()
        final = self._follow(run.pk, options["poll"], thread)
        thread.join()
        if errors:
            raise CommandError(f"executor crashed: {errors[0]!r}")
        self.stdout.write(f"run {run.pk} {final.status}: {final.stop_reason}")
        if final.status != RunStatus.SUCCEEDED:
            raise CommandError(f"run {run.pk} did not succeed ({final.status})", returncode=1)

    def _follow(self, run_id: int, poll: float, thread: threading.Thread) -> Any:
        last = None
        while True:
            progress = run_progress(run_id)
            line = progress.line()
            if line != last:
                self.stdout.write(line)
                last = line
            done = progress.status in RUN_TERMINAL or progress.status == RunStatus.AWAITING_APPROVAL
            if done and not thread.is_alive():
                return progress
            time.sleep(poll)
