"""Reads: what pages, the CLI and the API show about runs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

from django.contrib.auth import get_user_model
from django.db.models import (
    Count,
    Exists,
    F,
    JSONField,
    Min,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce

from runs.models import (
    AgentCall,
    LlmCall,
    Plan,
    ResourceLock,
    Run,
    RunArchive,
    Step,
    StepStatus,
    Task,
    Tombstone,
    TranscriptEvent,
)
from runs.statemachine import STEP_FINISHED

# The planner filter's value for runs of hand-written plans (their first version is the operator's).
HAND_WRITTEN = "hand-written"

STATUS_MARK: dict[str, str] = {
    StepStatus.PENDING: "·",
    StepStatus.RUNNING: "▶",
    StepStatus.SUCCEEDED: "✓",
    StepStatus.FAILED: "✗",
    StepStatus.SKIPPED: "-",
    StepStatus.CANCELLED: "⊘",
    StepStatus.ROLLED_BACK: "↺",
}


# A step id that is only a number, or "step" and a number, says nothing about the step.
_BARE_ID = re.compile(r"(?:step)?[-_]?\d+", re.IGNORECASE)


@dataclass(frozen=True)
class StepLine:
    number: int
    key: str
    phase: str
    status: str
    action: str = ""
    description: str = ""

    @property
    def mark(self) -> str:
        return STATUS_MARK.get(self.status, "?")

    @property
    def label(self) -> str:
        """The step's id, or its action (else description) when the id is a bare number."""
        if _BARE_ID.fullmatch(self.key):
            return self.action or self.description[:60] or self.key
        return self.key


@dataclass(frozen=True)
class RunProgress:
    run_id: int
    status: str
    stop_reason: str
    steps: tuple[StepLine, ...]

    def line(self) -> str:
        """The seeds' status line: ``[1] ✓ read_schema [2] ▶ backup ...``."""
        return " ".join(f"[{s.number}] {s.mark} {s.label}" for s in self.steps)


def run_progress(run_id: int) -> RunProgress:
    run = Run.objects.values("status", "stop_reason", "current_plan_id").get(pk=run_id)
    rows = Step.objects.filter(plan_id=run["current_plan_id"]).order_by("phase", "position")
    fields = ("key", "phase", "status", "tool_name", "description")
    steps = tuple(
        StepLine(i + 1, key, phase, status, action, description)
        for i, (key, phase, status, action, description) in enumerate(rows.values_list(*fields))
    )
    return RunProgress(run_id, run["status"], run["stop_reason"], steps)


def run_list() -> QuerySet[Run]:
    return Run.objects.select_related("task", "task__submitted_by", "current_plan")


def run_detail(run_id: int) -> Run:
    """One run for its page, with ``last_seq`` (its newest transcript seq, 0 if none) and its
    progress counts (``run_list_with_progress``): one query.

    The current plan's ``document`` and ``rollback`` are deferred (the page shows the stored
    steps, not the JSON), and the page reads everything else after this row, so steps and
    plans are at least as new as ``last_seq``. Raises ``Run.DoesNotExist``.
    """
    last = TranscriptEvent.objects.filter(run_id=OuterRef("pk")).order_by("-seq").values("seq")[:1]
    return (
        run_list_with_progress()
        .select_related("cancel_requested_by", "archive")
        .defer("current_plan__document", "current_plan__rollback")
        .annotate(
            last_seq=Coalesce(Subquery(last), 0),
            planner_decision=_planner_decision(),
            # Whether retention purged part of it (then the page reads what, in one query).
            has_tombstones=Exists(Tombstone.objects.filter(run_id=OuterRef("pk"))),
            # Whether subplan steps started child runs (then the page lists them, one query).
            has_children=Exists(Run.objects.filter(parent_run_id=OuterRef("pk"))),
        )
        .get(pk=run_id)
    )


# The list shows a version's parent by its number only.
_PARENT_UNUSED = ("document", "rollback", "errors", "diff", "goal")


def run_plan_versions(run_id: int) -> QuerySet[Plan]:
    """A run's plan versions, newest first, for the list on its page (documents deferred)."""
    return (
        Plan.objects.filter(run_id=run_id)
        .select_related("created_by", "parent")
        .defer("document", "rollback", *(f"parent__{f}" for f in _PARENT_UNUSED))
        .order_by("-version")
    )


def run_descendant_ids(run_id: int, *, children: list[int] | None = None) -> list[int]:
    """The ids of a run's child runs, their children and so on (subplans), breadth first.

    ``children``: the run's child ids when the caller has them (no query for a run without).
    """
    found: list[int] = []
    level = [run_id]
    if children is not None:
        found = level = list(children)
    while level:
        level = list(Run.objects.filter(parent_run_id__in=level).values_list("pk", flat=True))
        found += level
    return found


def run_children(run_id: int) -> list[dict[str, Any]]:
    """A run's child runs (its subplan steps'), oldest first: id, status, title, step key."""
    rows = (
        Run.objects.filter(parent_run_id=run_id)
        .order_by("id")
        .values_list("pk", "status", "task__title", "parent_step__key")
    )
    return [
        {"id": pk, "status": status, "title": title, "step": step}
        for pk, status, title, step in rows
    ]


def run_ancestor_ids(run_id: int) -> list[int]:
    """The ids of a run's parent, its parent and so on (empty for a top-level run)."""
    found: list[int] = []
    parent = Run.objects.filter(pk=run_id).values_list("parent_run_id", flat=True).first()
    while parent is not None and parent not in found:
        found.append(parent)
        parent = Run.objects.filter(pk=parent).values_list("parent_run_id", flat=True).first()
    return found


def run_steps_started(run_id: int) -> int:
    """Main steps a run started so far, replanned versions included (its steps budget's usage).

    A replan copies finished steps into the new version with their start time, so
    (key, started_at) counts each real start once.
    """
    return (
        Step.objects.filter(run_id=run_id, phase=Step.Phase.MAIN, started_at__isnull=False)
        .values_list("key", "started_at")
        .distinct()
        .count()
    )


def run_llm_calls(run_id: int) -> list[LlmCall]:
    """A run's model calls in order (its page lists them and sums them: one query)."""
    return list(LlmCall.objects.filter(run_id=run_id).order_by("id"))


def with_agent_calls(steps: list[Step]) -> list[Step]:
    """``steps``, each agent step with its inner calls as ``agent_calls`` (one query, only if any)."""
    keys = [str(s.idempotency_key) for s in steps if s.tool is not None and s.tool.kind == "agent"]
    if not keys:
        return steps
    by_key: dict[str, list[AgentCall]] = {}
    for call in AgentCall.objects.filter(idempotency_key__in=keys).order_by("index"):
        by_key.setdefault(call.idempotency_key, []).append(call)
    for step in steps:
        step.agent_calls = by_key.get(str(step.idempotency_key), [])  # type: ignore[attr-defined]
    return steps


def _planner_decision() -> Subquery:
    """The payload of a run's latest planner decision, for an annotation."""
    decisions = TranscriptEvent.objects.filter(run_id=OuterRef("pk"), kind="planner.decision")
    return Subquery(decisions.order_by("-seq").values("payload")[:1], output_field=JSONField())


def run_substitutions(run: Run) -> list[dict[str, str]]:
    """The step parameters the latest planner decision filled from the task's values.

    Free for a run from ``run_detail`` (annotated), one query for any other.
    """
    if hasattr(run, "planner_decision"):
        decision = run.planner_decision
    else:
        decision = (
            Run.objects.annotate(d=_planner_decision()).values_list("d", flat=True).get(pk=run.pk)
        )
    return list((decision or {}).get("substitutions") or [])


def run_events(run_id: int, *, after: int = 0) -> QuerySet[TranscriptEvent]:
    return TranscriptEvent.objects.filter(run_id=run_id, seq__gt=after).order_by("seq")


def run_steps(run_id: int) -> QuerySet[Step]:
    run = Run.objects.values("current_plan_id").get(pk=run_id)
    return with_lock_waits(
        Step.objects.filter(plan_id=run["current_plan_id"]).order_by("phase", "position")
    )


def with_lock_waits(steps: QuerySet[Step]) -> QuerySet[Step]:
    """Steps annotated with the resource lock each waits for, and who holds it.

    ``lock_waiting``: the key (None when the step waits for none);
    ``lock_held_by_run`` / ``lock_held_by_step``: its holder (None while it is
    held by nobody and earlier steps queue for it first).
    """
    waiting = ResourceLock.objects.filter(step_id=OuterRef("pk"), granted=False).order_by("key")
    holder = ResourceLock.objects.filter(key=OuterRef("lock_waiting"), granted=True)
    return steps.annotate(
        lock_waiting=Subquery(waiting.values("key")[:1]),
        lock_held_by_run=Subquery(holder.values("run_id")[:1]),
        lock_held_by_step=Subquery(holder.values("step__key")[:1]),
        # A step of a queued tool: its pool row (runs/pools.py), None for the others.
        pool_queue=F("remote__queue"),
        pool_status=F("remote__status"),
        pool_worker=F("remote__worker_id"),
    )


def lock_wait_text(step: Step) -> str:
    """What the page and the API say of a step waiting for a resource lock ("" when it does not)."""
    key = getattr(step, "lock_waiting", None)
    if not key:
        return ""
    run = getattr(step, "lock_held_by_run", None)
    if run is None:
        return f"waiting for lock {key}, queued behind earlier steps"
    held_by = getattr(step, "lock_held_by_step", None)
    return f"waiting for lock {key}, held by run {run}" + (f" (step {held_by})" if held_by else "")


def undone_by(steps: list[Step]) -> list[Step]:
    """Set ``undone_by`` on each rolled-back main step of one plan: the rollback steps that undid it.

    A step linked to rollback steps (its own undo, ``undoes:``) was undone by those that
    succeeded; any other rolled-back step by the plan's unlinked rollback steps.
    """
    rollback = [s for s in steps if s.phase == Step.Phase.ROLLBACK and s.status == "succeeded"]
    unlinked = [s.key for s in rollback if not s.undoes]
    for s in steps:
        by: list[str] = []
        if s.phase == Step.Phase.MAIN and s.status == "rolled_back":
            by = [r.key for r in rollback if r.undoes == s.key] or unlinked
        s.undone_by = by  # type: ignore[attr-defined]
    return steps


def _main_steps_count(**filters: Any) -> Coalesce:
    steps = (
        Step.objects.filter(plan_id=OuterRef("current_plan_id"), phase=Step.Phase.MAIN, **filters)
        .order_by()
        .values("plan_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(steps), 0)


def main_steps_finished() -> Coalesce:
    """The current plan's finished main steps: the one count behind the list's and the page's progress."""
    return _main_steps_count(status__in=STEP_FINISHED)


def run_list_with_progress() -> QuerySet[Run]:
    """Runs with their current plan's main-step counts, in one query however many runs.

    Correlated subqueries, not a JOIN + GROUP BY: PostgreSQL counts steps only for
    the rows of the page (after ORDER BY ... LIMIT), and ``count()`` drops them, so
    a page costs the same with 100 runs or 100k runs and 1M steps (bench/pages.py).
    """
    return run_list().annotate(
        steps_total=_main_steps_count(),
        steps_succeeded=_main_steps_count(status=StepStatus.SUCCEEDED),
        steps_finished=main_steps_finished(),
    )


def run_search(
    *,
    statuses: Sequence[str] | None = None,
    submitter: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    text: str | None = None,
    planner: str | None = None,
) -> QuerySet[Run]:
    """The run list narrowed by every filter given, newest first (the page's and the API's).

    ``planner`` is a planner name, or ``HAND_WRITTEN`` for runs of hand-written plans.

    ``text`` matches the task title, or a run number written ``12`` or ``#12``.
    """
    runs = run_list_with_progress()
    if statuses:
        runs = runs.filter(status__in=statuses)
    if submitter:
        runs = runs.filter(task__submitted_by__username=submitter)
    if planner:
        # A hand-written plan is one, whatever planner it names to replan it.
        written = Exists(
            Plan.objects.filter(run=OuterRef("pk"), version=1, source=Plan.Source.OPERATOR)
        )
        if planner == HAND_WRITTEN:
            runs = runs.filter(written | Q(task__planner=""))
        else:
            runs = runs.filter(~written, task__planner=planner)
    if created_after is not None:
        runs = runs.filter(created_at__gte=created_after)
    if created_before is not None:
        runs = runs.filter(created_at__lt=created_before)
    if text and text.strip():
        text = text.strip()
        match = Q(task__title__icontains=text)
        number = text.removeprefix("#")
        if number.isdigit() and len(number) < 19:
            match |= Q(pk=int(number))
        runs = runs.filter(match)
    return runs.order_by("-created_at", "-id")


def run_submitters() -> list[str]:
    """Usernames that submitted at least one task (the list page's submitter choices)."""
    ids = Task.objects.exclude(submitted_by=None).values("submitted_by")
    return list(
        get_user_model()
        .objects.filter(pk__in=ids)
        .order_by("username")
        .values_list("username", flat=True)
    )


RowT = TypeVar("RowT", bound=Model)


class IdPages(Generic[RowT]):
    """A list the Paginator slices in two steps: the page's ids, then those rows in full.

    A deep page (``OFFSET 99950``) then walks the order's index only, instead of
    joining and computing every skipped row (bench/pages.py): the runs list, the
    review queue.
    """

    ordered = True

    def __init__(self, rows: QuerySet[RowT]) -> None:
        self.rows = rows

    def count(self) -> int:
        return self.rows.count()

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[RowT]:
        return iter(self.rows)

    @overload
    def __getitem__(self, key: int) -> RowT: ...
    @overload
    def __getitem__(self, key: slice) -> list[RowT]: ...
    def __getitem__(self, key: int | slice) -> RowT | list[RowT]:
        if isinstance(key, int):
            return self.rows[key]
        return id_page(self.rows, key.start or 0, (key.stop or 0) - (key.start or 0))


def id_page(rows: QuerySet[RowT], offset: int, limit: int) -> list[RowT]:
    """``rows[offset:offset + limit]`` in the same order, in two cheap queries."""
    ids = list(rows.values_list("pk", flat=True)[offset : offset + limit])
    if not ids:
        return []
    found = rows.filter(pk__in=ids).order_by().in_bulk()
    return [found[pk] for pk in ids if pk in found]


def steps_taken(run_id: int) -> int:
    """How many steps the run has been given so far (ids step-1..step-n, kept ones counted once)."""
    return (
        Step.objects.filter(run_id=run_id, phase=Step.Phase.MAIN).values("key").distinct().count()
    )


def step_attempts(run_id: int) -> dict[int, list[dict[str, Any]]]:
    """Each started step's attempts, by step id, from the transcript: number, outcome, own error.

    A retry (``step.retrying``) ends the attempt before it as failed with that error;
    a step's final change ends its last attempt. A step that never started has none.
    """
    events = TranscriptEvent.objects.filter(
        run_id=run_id, kind__in=("step.status", "step.retrying")
    ).order_by("seq")
    attempts: dict[int, list[dict[str, Any]]] = {}
    for kind, payload, at in events.values_list("kind", "payload", "created_at"):
        tried = attempts.setdefault(payload.get("step_id", 0), [])
        if kind == "step.retrying":
            if tried:
                tried[-1].update(status=StepStatus.FAILED, error=payload.get("error", ""))
                tried[-1]["finished_at"] = at
            tried.append(_attempt(payload.get("attempt", len(tried) + 1), at))
        elif payload.get("to_status") == StepStatus.RUNNING:
            tried.append(_attempt(payload.get("attempt") or len(tried) + 1, at))
        elif tried and tried[-1]["status"] == StepStatus.RUNNING:
            why = payload.get("error") or payload.get("reason", "")
            tried[-1].update(status=payload.get("to_status", ""), error=why, finished_at=at)
    return attempts


def _attempt(number: int, at: datetime) -> dict[str, Any]:
    return {
        "attempt": number,
        "status": StepStatus.RUNNING,
        "error": "",
        "started_at": at,
        "finished_at": None,
    }


def run_confidence(run: Run) -> float | None:
    """A run's plan is as sure as its least sure main step; None when no step says."""
    if run.current_plan_id is None:
        return None
    steps = Step.objects.filter(plan_id=run.current_plan_id, phase=Step.Phase.MAIN)
    return steps.aggregate(low=Min("confidence"))["low"]


def run_is_archived(run_id: int) -> bool:
    """Whether the run was imported from a snapshot (read-only: nothing may act on it)."""
    return RunArchive.objects.filter(run_id=run_id).exists()


def run_archive(run: Run) -> RunArchive | None:
    """The run's archive row; no query when the run was read with ``select_related("archive")``."""
    try:
        return run.archive
    except RunArchive.DoesNotExist:
        return None


# Step outcomes in the order every progress bar and count shows them (list, run page, queue, API).
OUTCOME_ORDER: tuple[str, ...] = (
    StepStatus.SUCCEEDED,
    StepStatus.FAILED,
    StepStatus.ROLLED_BACK,
    StepStatus.CANCELLED,
    StepStatus.SKIPPED,
    StepStatus.RUNNING,
    StepStatus.PENDING,
)


def outcome_counts(statuses: Iterator[str] | Sequence[str]) -> dict[str, int]:
    """How many main steps ended (or stand) in each status, in ``OUTCOME_ORDER``, zeros left out."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return {s: counts[s] for s in OUTCOME_ORDER if counts.get(s)}


def attach_step_outcomes(runs: Sequence[Run]) -> None:
    """Set ``step_outcomes`` (``outcome_counts`` of the current plan's main steps) on each run.

    One query for a page of runs, whatever their size: the counts come grouped by plan
    and status, so a rolled-back run's bar is not drawn green from ``steps_finished``.
    """
    plans = {r.current_plan_id for r in runs if r.current_plan_id is not None}
    by_plan: dict[int, dict[str, int]] = {p: {} for p in plans}
    if plans:
        rows = (
            Step.objects.filter(plan_id__in=plans, phase=Step.Phase.MAIN)
            .order_by()
            .values_list("plan_id", "status")
            .annotate(n=Count("pk"))
        )
        for plan_id, status, n in rows:
            by_plan[plan_id][status] = n
    for run in runs:
        got = by_plan.get(run.current_plan_id or 0, {})
        run.step_outcomes = {s: got[s] for s in OUTCOME_ORDER if got.get(s)}  # type: ignore[attr-defined]


@dataclass(frozen=True)
class StepWait:
    """A stretch of time a step waited: for a resource lock, or for a reviewer at its gate."""

    step: str
    kind: str  # "lock" or "gate"
    start: datetime
    end: datetime | None
    label: str


_WAIT_KINDS = ("step.lock_waiting", "step.lock_acquired", "review.opened", "review.decided")


def step_waits(run_id: int) -> list[StepWait]:
    """The run's lock and gate waits, from its transcript (one query), for the run page's timeline.

    A lock wait runs from ``step.lock_waiting`` to the step's ``step.lock_acquired``; a gate
    wait from a ``review.opened`` naming a step to that item's ``review.decided``. A wait
    with no end yet is still going on (``end`` None).
    """
    events = (
        TranscriptEvent.objects.filter(run_id=run_id, kind__in=_WAIT_KINDS)
        .order_by("seq")
        .values_list("kind", "payload", "created_at")
    )
    return waits_of(events)


def waits_of(events: Iterable[tuple[str, Any, datetime]]) -> list[StepWait]:
    """``step_waits`` of transcript events already read, as (kind, payload, created_at) in seq order."""
    open_locks: dict[str, tuple[datetime, str]] = {}
    open_gates: dict[int, tuple[str, datetime, str]] = {}
    waits: list[StepWait] = []
    for kind, payload, at in events:
        if kind not in _WAIT_KINDS:
            continue
        step = str(payload.get("step") or "")
        if kind == "step.lock_waiting":
            open_locks.setdefault(step, (at, f"waiting for lock {payload.get('lock', '')}"))
        elif kind == "step.lock_acquired" and step in open_locks:
            start, label = open_locks.pop(step)
            waits.append(StepWait(step, "lock", start, at, label))
        elif kind == "review.opened" and step:
            open_gates[int(payload.get("item_id") or 0)] = (step, at, "waiting for a reviewer")
        elif kind == "review.decided":
            gate = open_gates.pop(int(payload.get("item_id") or 0), None)
            if gate is not None:
                waits.append(StepWait(gate[0], "gate", gate[1], at, gate[2]))
    waits += [StepWait(s, "lock", start, None, label) for s, (start, label) in open_locks.items()]
    waits += [StepWait(s, "gate", start, None, label) for s, start, label in open_gates.values()]
    return waits


def transcript_tail(
    run_id: int, *, last_seq: int, limit: int
) -> tuple[list[TranscriptEvent], list[StepWait]]:
    """The newest ``limit`` events up to ``last_seq`` and the run's waits, in one query.

    Seqs are gap-free from 1, so the newest ``limit`` are those after ``last_seq - limit``;
    the older events that can start or end a wait come with them, so the timeline's waits
    need no query of their own however long the transcript.
    """
    first_shown = max(1, last_seq - limit + 1)
    rows = list(
        TranscriptEvent.objects.filter(run_id=run_id, seq__lte=last_seq)
        .filter(Q(seq__gte=first_shown) | Q(kind__in=_WAIT_KINDS))
        .order_by("seq")
    )
    waits = waits_of((e.kind, e.payload, e.created_at) for e in rows)
    return [e for e in rows if e.seq >= first_shown], waits


def step_events(step: Step) -> QuerySet[TranscriptEvent]:
    """A step's own transcript events, in order: those naming its id, and gates naming its key.

    A replan copies a finished step into the new version under a new id; the events of the
    step it was copied from name that id, so they belong to the earlier version's page.
    """
    mine = Q(payload__step_id=step.pk) | Q(kind__startswith="review.", payload__step=step.key)
    return TranscriptEvent.objects.filter(mine, run_id=step.run_id).order_by("seq")
