"""A tool's question during a step's call (MCP elicitation): a review item the call waits on.

1. The step's tool (an MCP server) asks mid-call: ``elicitation_open`` opens an
   ``elicitation`` item (the kind's SLA and timeout action apply) with the
   server's message and requested schema, and records the question.
2. The task's submitter or a reviewer answers (``elicitation_answer``): accept
   with content valid against the schema, decline, or cancel. The answer is
   stored (redacted) and recorded; the waiting call reads it and the server gets it.
3. The call waits holding its worker slot (the MCP session must stay open), at
   most until the step's timeout: a timeout or the run's cancel closes the item
   unanswered (``elicitation_abandon``); the step then fails with a clear error.
   An operator's cancel closes it as well (``runs.lifecycle.cancel``); an SLA
   timeout with ``auto_reject`` declines it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from reviews.decisions import decided_event, item_audit, item_state, locked_item, review_open
from reviews.models import ReviewItem, ReviewKind, ReviewStatus, TimeoutAction
from reviews.statemachine import review_transition
from runs.dbthreads import in_db_thread
from runs.events import ElicitationAnswered, ElicitationAsked
from runs.execution.run_state import RunState
from runs.execution.steps import StepState
from runs.lifecycle.errors import RunError
from runs.models import Run, TranscriptEvent
from runs.permissions import is_reviewer, username
from runs.redaction import Redactor
from runs.statemachine import NewEvent, append_events, lock_rows
from runs.tools.asking import ACTIONS, Answer, Question

SUPERVISOR = TranscriptEvent.Role.SUPERVISOR
REVIEWER = TranscriptEvent.Role.REVIEWER
# How often a waiting call looks for the answer (it may come from any process).
POLL_SECONDS = 0.5
MAX_MESSAGE_CHARS = 4000


class NotYours(RunError):
    """The user may not answer this run's questions."""


class BadAnswer(RunError):
    """The answer does not fit the question (unknown action, content against the schema)."""


def _asked(item: ReviewItem) -> ElicitationAsked:
    c = item.context
    return ElicitationAsked(
        item_id=item.pk,
        step=str(c.get("step", "")),
        server=str(c.get("server", "")),
        tool=str(c.get("tool", "")),
        message=str(c.get("message", "")),
        requested_schema=dict(c.get("schema") or {}),
    )


@transaction.atomic
def elicitation_open(*, run_id: int, step_id: int, step: str, question: Question) -> int:
    """Open the item for a tool's question and record it; returns the item's id."""
    run = lock_rows(Run.objects.filter(pk=run_id)).get()
    message = question.message[:MAX_MESSAGE_CHARS]
    item = review_open(
        run=run,
        kind=ReviewKind.ELICITATION,
        reason=f"MCP server {question.server} asks (step {step}): {message}",
        cause="tool_question",
        step_id=step_id,
        context={
            "step": step,
            "server": question.server,
            "tool": question.tool,
            "message": message,
            "schema": question.schema,
        },
    )
    append_events(run_id, [NewEvent(SUPERVISOR, _asked(item))])
    return item.pk


def elicitation_outcome(item_id: int) -> Answer | None:
    """The answer to send the server once the item is closed; None while it is open."""
    item = ReviewItem.objects.get(pk=item_id)
    if item.status == ReviewStatus.OPEN:
        return None
    answer = item.context.get("answer")
    if isinstance(answer, dict) and answer.get("action") in ACTIONS:
        return Answer(answer["action"], answer.get("content"))
    if item.decision == TimeoutAction.AUTO_REJECT:
        return Answer("decline")
    return Answer("cancel")  # closed unanswered (the run was cancelled)


@transaction.atomic
def elicitation_abandon(*, item_id: int, reason: str) -> None:
    """Close the item unanswered (the call stopped waiting); a decided item stays as it is."""
    item = locked_item(item_id)
    if item.status != ReviewStatus.OPEN:
        return
    before = item_state(item)
    review_transition(
        item=item, to=ReviewStatus.EXPIRED, by=None, decision="unanswered", reason=reason
    )
    answered = ElicitationAnswered(
        item_id=item.pk, step=str(item.context.get("step", "")), action="cancel", reason=reason
    )
    append_events(item.run_id, [decided_event(item, None, None), NewEvent(SUPERVISOR, answered)])
    item_audit(
        item, "review.expired", actor=None, before=before, after=item_state(item), reason=reason
    )


def elicitation_expired_event(item: ReviewItem) -> NewEvent:
    """The record of an SLA timeout that declined the question (``auto_reject``)."""
    answered = ElicitationAnswered(
        item_id=item.pk,
        step=str(item.context.get("step", "")),
        action="decline",
        reason=item.reason,
    )
    return NewEvent(SUPERVISOR, answered)


def content_problems(schema: dict[str, Any], content: Any) -> list[str]:
    """Every way ``content`` breaks the requested schema ([] when it fits)."""
    if not isinstance(content, dict):
        return ["the content must be an object of the form's fields"]
    try:
        validator = Draft202012Validator(schema)
        return [
            f"{'.'.join(map(str, e.absolute_path)) or 'content'}: {e.message}"
            for e in sorted(validator.iter_errors(content), key=lambda e: list(e.absolute_path))
        ]
    except SchemaError as exc:
        return [f"the server's schema is invalid: {exc.message}"]


def may_answer(user: User, run: Run) -> bool:
    """The task's submitter or a reviewer answers a run's questions."""
    return run.task.submitted_by_id == user.pk or is_reviewer(user)


@transaction.atomic
def elicitation_answer(
    *, run_id: int, item_id: int, user: User, action: str, content: Any = None
) -> ReviewItem:
    """Answer a tool's open question; the waiting call sends it to the server.

    Raises ``Run.DoesNotExist`` or ``ReviewItem.DoesNotExist`` (no such run or
    question of that run), ``NotYours`` (not the submitter nor a reviewer),
    ``BadAnswer`` (unknown action, content that breaks the schema) or ``RunError``
    (the question was already answered or closed); nothing is written then.
    """
    run = lock_rows(Run.objects.filter(pk=run_id)).select_related("task").get()
    if not may_answer(user, run):
        raise NotYours("Only the task's submitter or a reviewer answers its questions.")
    item = locked_item(
        ReviewItem.objects.get(pk=item_id, run_id=run_id, kind=ReviewKind.ELICITATION).pk
    )
    if item.status != ReviewStatus.OPEN:
        raise RunError(f"Question {item_id} was already closed ({item.decision or item.status}).")
    if action not in ACTIONS:
        raise BadAnswer(f"The action is one of {', '.join(ACTIONS)}, not {action!r}.")
    if action == "accept":
        problems = content_problems(dict(item.context.get("schema") or {}), content)
        if problems:
            raise BadAnswer("The answer does not fit the form: " + "; ".join(problems))
        # Form answers are not for secrets (MCP's form mode): stored and sent redacted alike.
        content = Redactor(run_id).value(content)
    else:
        content = None
    before = item_state(item)
    answer = {"action": action, "content": content}
    review_transition(
        item=item,
        to=ReviewStatus.APPROVED if action == "accept" else ReviewStatus.REJECTED,
        by=user,
        decision=action,
        reason=f"answered {action}",
        context={**item.context, "answer": answer},
    )
    answered = ElicitationAnswered(
        item_id=item.pk,
        step=str(item.context.get("step", "")),
        action=action,
        content=content,
        by=username(user),
    )
    append_events(run_id, [decided_event(item, user, None), NewEvent(REVIEWER, answered)])
    item_audit(
        item, "review.answered", actor=user, before=before, after={**item_state(item), **answer}
    )
    return item


async def elicitation_wait(run: RunState, step: StepState, question: Question) -> Answer:
    """Open the item, then wait for its answer; a stopped wait closes it unanswered."""
    item_id = await in_db_thread(
        lambda: elicitation_open(
            run_id=run.run_id, step_id=step.id, step=step.key, question=question
        )
    )
    try:
        while True:
            answer = await in_db_thread(lambda: elicitation_outcome(item_id))
            if answer is not None:
                return answer
            await asyncio.sleep(POLL_SECONDS)
    except asyncio.CancelledError:
        reason = "the call stopped waiting (the step timed out or the run was cancelled)"
        await asyncio.shield(
            in_db_thread(lambda: elicitation_abandon(item_id=item_id, reason=reason))
        )
        raise


def form_fields(item: ReviewItem) -> list[dict[str, Any]]:
    """The requested schema's fields as a form: name, label, input type, choices, required."""
    schema = dict(item.context.get("schema") or {})
    required = set(schema.get("required") or [])
    answer = item.context.get("answer") or {}
    given = answer.get("content") or {} if isinstance(answer, dict) else {}
    fields = []
    for name, prop in dict(schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type", "string")
        choices = prop.get("enum") or [o.get("const") for o in prop.get("oneOf") or []]
        if kind == "boolean":
            choices = ["true", "false"]
        fields.append(
            {
                "name": str(name),
                "label": str(prop.get("title") or name),
                "help": str(prop.get("description") or ""),
                "type": kind,
                "input": "number" if kind in ("integer", "number") else "text",
                "step": "1" if kind == "integer" else "any",
                "choices": [str(c) for c in choices if c is not None],
                "required": name in required,
                "value": "" if given.get(name) is None else str(given.get(name)),
            }
        )
    return fields


_WANTED = {"integer": "a whole number", "number": "a number", "boolean": "true or false"}


def form_content(item: ReviewItem, data: Any) -> dict[str, Any]:
    """A posted form's text values typed as the schema says (blank fields left out).

    Raises ``BadAnswer`` for a value that is not of its field's type.
    """
    content: dict[str, Any] = {}
    for field in form_fields(item):
        text = str(data.get(field["name"], "")).strip()
        if not text:
            continue
        try:
            if field["type"] == "integer":
                content[field["name"]] = int(text)
            elif field["type"] == "number":
                content[field["name"]] = float(text)
            elif field["type"] == "boolean":
                content[field["name"]] = {"true": True, "false": False}[text]
            else:
                content[field["name"]] = text
        except (ValueError, KeyError):
            wanted = _WANTED.get(field["type"], field["type"])
            raise BadAnswer(f"{field['label']}: {text!r} is not {wanted}") from None
    return content
