"""Clarifying questions: the run waits (``awaiting_input``, holding no worker) for an answer.

1. The planner answers with a question (``PlanOutcome.question``) instead of a plan,
   or, in the iterative mode, instead of its next step: ``question_open`` opens a
   ``clarification`` review item (the kind's SLA and timeout action apply), records
   the question in the transcript and parks the run, releasing its worker.
2. The task's submitter or a reviewer answers (``run_answer``): the item closes with
   the answer, the transcript and the audit trail record it, and the run goes back to
   the queue, where the planner plans again (or picks its next step) with every
   answer so far.
3. At most ``PLANNERWEB_MAX_QUESTIONS`` per run: past that the planner is not offered
   the question form, so it must plan (or fail to).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from reviews.audit import audit_record
from reviews.decisions import review_open
from reviews.models import ReviewItem, ReviewKind, ReviewStatus
from reviews.statemachine import review_transition
from runs.events import QuestionAnswered, QuestionAsked
from runs.lifecycle.dispatch import enqueue_run
from runs.lifecycle.errors import RunError
from runs.models import Run, RunStatus, TranscriptEvent
from runs.permissions import is_reviewer
from runs.redaction import Redactor
from runs.statemachine import NewEvent, lock_rows, run_transition

PLANNER = TranscriptEvent.Role.PLANNER
MAX_ANSWER_CHARS = 2000


class NotYours(RunError):
    """The user may not answer this run's question."""


def clarifications_of(run_id: int) -> list[tuple[str, str]]:
    """The run's questions and their answers, oldest first (what the planner is told)."""
    items = ReviewItem.objects.filter(
        run_id=run_id, kind=ReviewKind.CLARIFICATION, decision="answered"
    ).order_by("id")
    return [(str(i.context.get("question", "")), str(i.context.get("answer", ""))) for i in items]


def questions_left(run_id: int) -> int:
    asked = ReviewItem.objects.filter(run_id=run_id, kind=ReviewKind.CLARIFICATION).count()
    return max(0, settings.PLANNERWEB_MAX_QUESTIONS - asked)


def open_question(run_id: int) -> ReviewItem | None:
    """The run's clarification item still waiting for an answer."""
    return (
        ReviewItem.objects.filter(
            run_id=run_id, kind=ReviewKind.CLARIFICATION, status=ReviewStatus.OPEN
        )
        .order_by("-id")
        .first()
    )


def question_open(*, run: Run, question: dict[str, Any], planner: str) -> str:
    """Park a planning or iterative run on the planner's question (inside the caller's transaction)."""
    number = ReviewItem.objects.filter(run=run, kind=ReviewKind.CLARIFICATION).count() + 1
    text = str(question.get("question", ""))
    item = review_open(
        run=run,
        kind=ReviewKind.CLARIFICATION,
        reason=f"{planner} asks: {text}",
        cause="planner_question",
        context={"question": text, "options": list(question.get("options") or [])},
    )
    asked = QuestionAsked(
        item_id=item.pk,
        number=number,
        question=item.context["question"],
        options=item.context["options"],
    )
    run_transition(
        run_id=run.pk,
        to=RunStatus.AWAITING_INPUT,
        reason=f"question {number} for the submitter",
        role=PLANNER,
        extra_events=[NewEvent(PLANNER, asked)],
        lease_owner="",
        lease_expires_at=None,
    )
    return RunStatus.AWAITING_INPUT


def _may_answer(user: User, run: Run) -> bool:
    return run.task.submitted_by_id == user.pk or is_reviewer(user)


@transaction.atomic
def run_answer(*, run_id: int, user: User, answer: str) -> Run:
    """Answer the run's open question: stored, audited, and the run back to the planner.

    Raises ``Run.DoesNotExist``, ``NotYours`` (not the submitter nor a reviewer) or
    ``RunError`` (no question waiting, an empty or too long answer); nothing is written then.
    """
    run = lock_rows(Run.objects.filter(pk=run_id)).select_related("task").get()
    if not _may_answer(user, run):
        raise NotYours("Only the task's submitter or a reviewer answers its questions.")
    answer = answer.strip()
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        raise RunError(f"An answer has 1 to {MAX_ANSWER_CHARS} characters.")
    item = open_question(run_id)
    if run.status != RunStatus.AWAITING_INPUT or item is None:
        raise RunError(f"Run {run_id} is {run.status}: it has no question waiting for an answer.")
    answer = Redactor(run_id).text(answer)
    item = lock_rows(ReviewItem.objects.filter(pk=item.pk)).get()
    before = {"status": item.status}
    item.context = {**item.context, "answer": answer}
    review_transition(
        item=item,
        to=ReviewStatus.APPROVED,
        by=user,
        decision="answered",
        reason=answer,
        context=item.context,
    )
    audit_record(
        actor=user,
        action="review.answered",
        object_type="review_item",
        object_id=item.pk,
        before=before,
        after={"status": item.status, "question": item.context["question"], "answer": answer},
        run_id=run_id,
        item_id=item.pk,
    )
    answered = QuestionAnswered(
        item_id=item.pk, question=item.context["question"], answer=answer, by=user.get_username()
    )
    run = run_transition(
        run_id=run_id,
        to=RunStatus.QUEUED,
        reason="answered: back to the planner",
        role=TranscriptEvent.Role.REVIEWER,
        extra_events=[NewEvent(TranscriptEvent.Role.REVIEWER, answered)],
    )
    enqueue_run(run_id)
    return run
