"""``manage.py plan "task text" --provider openai [--dry-run | --wait]``: plan a task from the CLI.

With ``--dry-run`` the validated plan is printed (JSON) and nothing is stored or
run; without it, the task is submitted and planned like one from the form (the
run id is printed), then a worker executes it, or this command with ``--wait``.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.lifecycle.claim import run_execute
from runs.lifecycle.confirmation import open_confirmation
from runs.lifecycle.intake import TaskTitleMissing, planner_task_check
from runs.lifecycle.planning import run_plan, run_submit_task
from runs.management.options import add_max_parallel, max_parallel_option
from runs.models import ConfirmPlan
from runs.permissions import is_operator
from runs.planning.availability import PlannerUnavailable
from runs.planning.options import MODES, PLANNERS, PlannerOptions, PlannerOptionsError
from runs.planning.planner import plan_task
from runs.planning.pricing import call_price
from runs.planning.prompt import context_for
from runs.redaction import redact_text


class Command(BaseCommand):
    help = (
        "Ask a planner for a plan for TASK; --dry-run prints the validated plan without running it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("task", help="what to do, in words")
        parser.add_argument("--description", default="", help="more detail for the planner")
        parser.add_argument("--provider", choices=PLANNERS, help="planner (default: settings)")
        parser.add_argument("--model", default="", help="model name (default: the provider's)")
        parser.add_argument("--mode", choices=MODES, help="planning mode (default: auto)")
        parser.add_argument("--temperature", type=float)
        parser.add_argument("--max-tokens", type=int)
        parser.add_argument("--max-replans", type=int)
        parser.add_argument("--max-steps", type=int, help="iterative mode: the most steps")
        add_max_parallel(parser)
        parser.add_argument("--dry-run", action="store_true", help="print the plan; store nothing")
        parser.add_argument(
            "--wait", action="store_true", help="execute the run here and print how it ended"
        )
        parser.add_argument("--user", help="submit as this operator (without --dry-run)")
        parser.add_argument(
            "--confirm",
            choices=ConfirmPlan.values,
            help="show the plan for confirmation before it runs: auto (when unsure or "
            "sensitive), always or never (default: PLANNERWEB_CONFIRM_PLANS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        max_parallel_option(options["max_parallel"])
        given = {
            "planner": options["provider"],
            "model": options["model"],
            "mode": options["mode"],
            "temperature": options["temperature"],
            "max_tokens": options["max_tokens"],
            "max_replans": options["max_replans"],
            "max_steps": options["max_steps"],
        }
        # Refused as the API refuses it, before anything is created or any planner is asked.
        try:
            title, planner = planner_task_check(title=options["task"], **given)
        except (TaskTitleMissing, PlannerOptionsError, PlannerUnavailable) as exc:
            raise CommandError(str(exc)) from exc
        if not options["dry_run"]:
            self._submit(options, title, planner)
            return
        context = context_for(
            task=title,
            description=options["description"],
            mode=planner.mode,
            max_replans=planner.max_replans,
        )
        outcome = plan_task(context, planner)
        for call in outcome.calls:
            price = call_price(call.provider, call.model, call.tokens_in, call.tokens_out)
            self.stderr.write(
                f"{call.provider}/{call.model} {call.purpose}: {call.tokens_in} in, "
                f"{call.tokens_out} out, {call.latency_ms} ms, "
                + (f"${price.cost:f} ({price.source})" if price.cost is not None else "no price")
                + (f", {redact_text(call.error or call.refusal)}" if not call.ok else "")
            )
        if outcome.ok and outcome.validated is not None and outcome.validated.document:
            document = outcome.validated.document.model_dump(mode="json", exclude_defaults=True)
            self.stderr.write(
                f"plan from {outcome.planner} ({outcome.mode}), confidence "
                f"{outcome.confidence if outcome.confidence is not None else 'not given'}"
                + (f": {outcome.reason}" if outcome.reason else "")
            )
            self.stdout.write(json.dumps(document, indent=2, ensure_ascii=False))
            return
        problems = outcome.validated.problems if outcome.validated else []
        for problem in problems:
            where = f"{problem.path}: " if problem.path else ""
            self.stderr.write(f"  - {where}{problem.message}")
        raise CommandError(f"no valid plan: {redact_text(outcome.reason)}", returncode=2)

    def _submit(self, options: dict[str, Any], title: str, planner: PlannerOptions) -> None:
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None or not is_operator(user):
                raise CommandError(f"user {options['user']!r} does not exist or is not an operator")
        run = run_submit_task(
            title=title,
            description=options["description"],
            submitted_by=user,
            planner=planner.planner,
            model=planner.model,
            mode=planner.mode,
            temperature=planner.temperature,
            max_tokens=planner.max_tokens,
            max_replans=planner.max_replans,
            max_steps=planner.max_steps,
            max_parallel=options["max_parallel"],
            confirm_plan=options.get("confirm"),
        )
        status = run_plan(run_id=run.pk)
        run.refresh_from_db()
        self.stdout.write(
            f"run {run.pk} {status}" + (f": {run.stop_reason}" if run.stop_reason else "")
        )
        if status == "awaiting_approval":
            version = run.current_plan.version if run.current_plan else "?"
            if open_confirmation(run.pk) is not None:
                self.stdout.write(
                    f"plan v{version} waits for confirmation: confirm or discard it on the "
                    f"run's page or with POST /api/runs/{run.pk}/confirm (or /discard)"
                )
            else:
                self.stdout.write(
                    f"plan v{version} waits for a reviewer's approval (the approval policy): "
                    "decide it in the review queue (/reviews/) or with POST /api/reviews/{id}/decide"
                )
            return
        if status != "executing":
            raise CommandError(f"run {run.pk} was not planned", returncode=2)
        if not options["wait"]:
            self.stdout.write("a worker will execute it (make run, or manage.py db_worker)")
            return

        status = run_execute(run_id=run.pk)
        run.refresh_from_db()
        self.stdout.write(
            f"run {run.pk} {status}" + (f": {run.stop_reason}" if run.stop_reason else "")
        )
        if status != "succeeded":
            raise CommandError(f"run {run.pk} ended {status}", returncode=1)
