"""Run a golden suite: each task end to end (planner, approval, executor, evaluator), judged.

Each task runs in its own sandbox folder, with its tool faults installed as the
registry's interceptor and the providers pointed at a model proxy (``cassettes``)
that records, replays or injects model faults. ``suite_isolated`` gives the whole
suite a database of its own, created and migrated for it and dropped afterwards,
so production data is never read or written.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import connections
from django.test.utils import override_settings

from reviews.models import ReviewItem, ReviewKind, ReviewStatus
from runs.evals.cassettes import Cassette, CassetteError, ModelProxy
from runs.evals.expectations import judge
from runs.evals.faults import FaultSpec, ToolFaults
from runs.evals.observe import Observation, run_observe
from runs.evals.suite import LoadedSuite, ResolvedTask
from runs.execution.journal_link import close_kept_links
from runs.lifecycle.claim import run_execute
from runs.lifecycle.confirmation import run_confirm, run_discard
from runs.lifecycle.planning import run_plan, run_submit_task
from runs.lifecycle.reviews import review_approve, review_reject
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, RunStatus
from runs.permissions import OPERATORS, REVIEWERS
from runs.planning.options import PlannerOptionsError
from runs.planning.validation import validate_with_registry
from runs.statemachine import RUN_TERMINAL
from runs.tools import registry
from runs.tools.yaml_io import tools_import

MAX_ROUNDS = 20  # approvals and executions per task: a run that needs more is looping
KEY_ENVS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "PLANNERWEB_LOCAL_API_KEY")


@dataclass(frozen=True)
class RunOptions:
    provider: str = ""  # overrides every task's planner that is a model provider
    model: str = ""
    mode: str = "live"  # live | record | replay
    faults: tuple[FaultSpec, ...] = ()  # added to every task's own
    repeat: int = 1
    cassettes: Path | None = None  # default: cassettes/<suite>/ next to the suite file
    workdir: Path = Path("var/evaluate")


@dataclass
class TaskResult:
    name: str
    attempt: int
    passed: bool
    failures: list[str]
    seen: Observation
    planner: str
    faults: list[str] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    network_calls: int = 0


Progress = Callable[[int, int, TaskResult], None]


class RunLooping(RuntimeError):
    """A run still going after the runner's rounds: counted as looping."""


def _drop_pool(conn: Any) -> None:
    """A PostgreSQL pool keeps connecting to the database it was made for: close it."""
    conn.close()
    if getattr(conn, "pool", None) is not None:
        conn.close_pool()


@contextmanager
def suite_isolated(folder: Path) -> Iterator[None]:
    """A fresh, migrated database for the suite's runs, dropped afterwards."""
    conn = connections["default"]
    old_name = conn.settings_dict["NAME"]
    test = conn.settings_dict.setdefault("TEST", {})
    saved = dict(test)
    if conn.vendor == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        test["NAME"] = str(folder / f"evaluate-{os.getpid()}.sqlite3")
    else:
        test["NAME"] = f"{old_name}_evaluate_{os.getpid()}"
    _drop_pool(conn)
    conn.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield
    finally:
        _drop_pool(conn)
        close_kept_links()  # executors' connections to the suite's database
        conn.creation.destroy_test_db(old_name, verbosity=0)
        test.clear()
        test.update(saved)


@contextmanager
def _intercepting(faults: ToolFaults) -> Iterator[None]:
    registry.INTERCEPTORS.append(faults)
    try:
        yield
    finally:
        registry.INTERCEPTORS.remove(faults)


@contextmanager
def _placeholder_keys(on: bool) -> Iterator[None]:
    """In replay no provider is reached: an unset API key must not stop the call early."""
    added = [
        k for k in KEY_ENVS if on and not os.environ.get(k) and not os.environ.get(k + "_FILE")
    ]
    for name in added:
        os.environ[name] = "replay-without-network"
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _user(name: str, group: str) -> User:
    user, _ = User.objects.get_or_create(username=name)
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def suite_prepare(loaded: LoadedSuite) -> tuple[User, User]:
    """Import the suite's tools; the operator who submits and the reviewer who decides."""
    tools_import(text=loaded.tools_text)
    return _user("evaluate-operator", OPERATORS), _user("evaluate-reviewer", REVIEWERS)


def _planner(task: ResolvedTask, options: RunOptions) -> str:
    if options.provider and task.planner not in ("manual", "playbook"):
        return options.provider
    return task.planner


def _start(task: ResolvedTask, planner: str, options: RunOptions, operator: User) -> int:
    text = task.spec.text
    model = options.model or task.model
    if task.plan is not None:
        replanner = (
            {"planner": planner, "model": model, "max_replans": task.max_replans}
            if planner != "manual"
            else None
        )
        run = run_submit_plan(
            title=text,
            description=task.spec.description,
            document=task.plan,
            submitted_by=operator,
            validated=validate_with_registry(task.plan),
            replanner=replanner,
        )
        return run.pk
    run = run_submit_task(
        title=text,
        description=task.spec.description,
        submitted_by=operator,
        planner=planner,
        model=model,
        mode=task.mode,
        max_replans=task.max_replans,
    )
    run_plan(run_id=run.pk)
    return run.pk


def _decide(run_id: int, approval: str, users: tuple[User, User]) -> bool:
    """Decide the run's open item as the suite says; False if none.

    A plan confirmation is the submitter's (the operator confirms or discards it); a plan
    approval or step gate is the reviewer's.
    """
    item = (
        ReviewItem.objects.filter(run_id=run_id, status=ReviewStatus.OPEN)
        .exclude(kind=ReviewKind.ESCALATION)
        .order_by("pk")
        .first()
    )
    if item is None:
        return False
    operator, reviewer = users
    if item.kind == ReviewKind.CONFIRMATION:
        if approval == "approve":
            run_confirm(run_id=run_id, user=operator, reason="golden suite: confirm")
        else:
            run_discard(run_id=run_id, user=operator, reason="golden suite: discard")
    elif approval == "approve":
        ticked = range(len(item.checklist or []))  # the suite's reviewer ticks every item
        review_approve(
            item_id=item.pk, user=reviewer, checklist=ticked, reason="golden suite: approve"
        )
    else:
        review_reject(item_id=item.pk, user=reviewer, reason="golden suite: reject")
    return True


def _drive(run_id: int, approval: str, users: tuple[User, User]) -> str:
    """Execute the run to its end, deciding approvals; raises RunLooping if it keeps going."""
    for _ in range(MAX_ROUNDS):
        status = Run.objects.values_list("status", flat=True).get(pk=run_id)
        if status in RUN_TERMINAL or status == RunStatus.ESCALATED:
            return status
        if status == RunStatus.AWAITING_APPROVAL:
            if not _decide(run_id, approval, users):
                return status
            continue
        run_execute(run_id=run_id)
    raise RunLooping(f"the run did not end within {MAX_ROUNDS} rounds")


def _policy(task: ResolvedTask) -> dict[str, str]:
    return {"PLANNERWEB_APPROVAL_MODE": task.approval_policy} if task.approval_policy else {}


def _cassette_path(loaded: LoadedSuite, options: RunOptions, task: str) -> Path:
    base = options.cassettes
    if base is None:
        folder = loaded.path.parent if loaded.path is not None else options.workdir
        base = folder / "cassettes" / loaded.name
    return base / f"{task}.json"


def task_run(
    loaded: LoadedSuite,
    task: ResolvedTask,
    options: RunOptions,
    users: tuple[User, User],
    sandboxes: Path,
    attempt: int = 1,
) -> TaskResult:
    """Run one task of the suite end to end and judge it."""
    faults = [*task.spec.faults, *options.faults]
    planner = _planner(task, options)
    cassette_file = _cassette_path(loaded, options, task.spec.name)
    failures: list[str] = []
    cassette = None
    if options.mode == "replay" and cassette_file.is_file():
        try:
            cassette = Cassette.load(cassette_file)
        except CassetteError as exc:
            failures.append(str(exc))
    tool_faults = ToolFaults(faults)
    sandbox = Path(tempfile.mkdtemp(prefix=f"{task.spec.name}-{attempt}-", dir=sandboxes))
    started = time.monotonic()
    with (
        ModelProxy(mode=options.mode, cassette=cassette, faults=faults) as proxy,
        override_settings(**proxy.base_urls(), **_policy(task), PLANNERWEB_SANDBOX_DIR=sandbox),
        _intercepting(tool_faults),
        _placeholder_keys(options.mode == "replay"),
    ):
        try:
            run_id: int | None = _start(task, planner, options, users[0])
        except (PlannerOptionsError, ValueError) as exc:
            run_id = None
            failures.append(f"the task could not start: {exc}")
        if run_id is not None:
            try:
                _drive(run_id, task.approval, users)
            except RunLooping as exc:
                failures.append(str(exc))
            except Exception as exc:  # a crash fails this task, not the whole suite
                failures.append(f"the run did not finish: {type(exc).__name__}: {exc}")
    seconds = time.monotonic() - started
    seen = run_observe(run_id, seconds=seconds) if run_id else Observation("not_started")
    if proxy.log.misses:
        failures.append(f"cassette miss: {'; '.join(proxy.log.misses)}")
    failures += judge(task.spec.expect, seen)
    if options.mode == "record" and proxy.cassette.entries:
        proxy.cassette.save(cassette_file)
    return TaskResult(
        name=task.spec.name,
        attempt=attempt,
        passed=not failures,
        failures=failures,
        seen=seen,
        planner=planner,
        faults=[str(f) for f in faults],
        injected=tool_faults.injected + proxy.log.injected,
        misses=proxy.log.misses,
        network_calls=proxy.log.network_calls,
    )


def suite_run(
    loaded: LoadedSuite, options: RunOptions, progress: Progress | None = None
) -> list[TaskResult]:
    """Every task of the suite, ``options.repeat`` times each, in the current database."""
    users = suite_prepare(loaded)
    results: list[TaskResult] = []
    total = len(loaded.tasks) * options.repeat
    options.workdir.mkdir(parents=True, exist_ok=True)
    # Each task's sandbox folder lives here, removed with everything the tools left.
    with tempfile.TemporaryDirectory(prefix="sandboxes-", dir=options.workdir) as sandboxes:
        for attempt in range(1, options.repeat + 1):
            for task in loaded.tasks:
                result = task_run(loaded, task, options, users, Path(sandboxes), attempt)
                results.append(result)
                if progress is not None:
                    progress(len(results), total, result)
    return results


def cost_of(results: list[TaskResult]) -> Decimal:
    return sum((r.seen.cost for r in results), Decimal(0))
