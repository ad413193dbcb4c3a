"""Which runs become playbooks: only those an operator or reviewer saves on purpose.

The playbook planner also reuses runs that succeeded after a reviewer approved
their plan (``runs.planning.providers.playbook.load_cases``); every other success
stays out until someone vouches for it here. A plan that merely happened to work
(an injection test, a one-off) must not become the template for the next task.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction

from runs.events import PlaybookSaved
from runs.lifecycle.errors import RunError
from runs.models import Playbook, Run, RunStatus, TranscriptEvent
from runs.permissions import is_reviewer
from runs.statemachine import NewEvent, append_events

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


class PlaybookNameError(ValueError):
    """The name is not a slug, or another playbook has it."""


@transaction.atomic
def playbook_save_from_run(*, run_id: int, name: str, task_text: str = "", user: Any) -> Playbook:
    """Store the run's current plan as playbook ``name``, matched against ``task_text``.

    ``task_text`` defaults to the task's title and description. Raises
    ``Run.DoesNotExist``, ``RunError`` (the run did not succeed, or has no valid
    plan) or ``PlaybookNameError``; nothing is written then.
    """
    run = Run.objects.select_related("task", "current_plan").get(pk=run_id)
    if run.status != RunStatus.SUCCEEDED:
        raise RunError(f"Run {run_id} is {run.status}: only a succeeded run's plan is a playbook.")
    plan = run.current_plan
    if plan is None or not plan.is_valid or plan.document is None:
        raise RunError(f"Run {run_id} has no valid plan to keep.")
    if not _NAME.match(name):
        raise PlaybookNameError(
            "A playbook name is 1-100 lowercase letters, digits, '-' or '_', starting with a "
            "letter or digit."
        )
    text = (task_text.strip() or f"{run.task.title} {run.task.description}".strip())[:2000]
    try:
        with transaction.atomic():
            playbook = Playbook.objects.create(
                name=name, task_text=text, document=plan.document, source_run=run
            )
    except IntegrityError:
        raise PlaybookNameError(f"A playbook named {name!r} exists already.") from None
    by = user.get_username() if user is not None else None
    role = TranscriptEvent.Role.REVIEWER if is_reviewer(user) else TranscriptEvent.Role.SYSTEM
    append_events(run.pk, [NewEvent(role, PlaybookSaved(name=name, by=by))])
    return playbook
