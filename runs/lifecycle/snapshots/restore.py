"""Import a snapshot as a read-only archived run: new ids, the source kept as provenance.

The run keeps its (finished) status, its plan versions with their steps, its
transcript and its model calls as rows, so its page shows the graph, timeline and
transcript like any run's. Review items and audit entries describe decisions taken
in another plannerweb: they are kept on the ``RunArchive`` row and shown, never
reopened. One transaction: a snapshot that fails any check writes nothing.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils.dateparse import parse_datetime

from reviews.audit import audit_record
from runs.lifecycle.intake import MaxParallelError, max_parallel_check
from runs.lifecycle.snapshots.document import SnapshotError, snapshot_validate
from runs.models import LlmCall, Plan, Run, RunArchive, Step, Task, TranscriptEvent
from runs.statemachine import RUN_TERMINAL
from runs.textdata import MAX_DEPTH, TextDataError, parse_json, unstorable

# A stored value's own depth limit, plus the levels the snapshot puts above it.
SNAPSHOT_DEPTH = MAX_DEPTH + 10
# Transcript payload keys holding ids of rows the import gives new ids to.
_REMAPPED = {"plan_id": "plans", "step_id": "steps", "call_id": "calls"}


def _time(value: str | None) -> datetime | None:
    return _when(value) if value else None


def _when(value: str) -> datetime:
    """An ISO 8601 time of the document (SnapshotError if it is not one)."""
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise SnapshotError(f"{value[:40]!r} is not an ISO 8601 date and time")
    return parsed


def _parse(data: bytes) -> dict[str, Any]:
    """The snapshot in ``data``, read with the limits of every document the product reads.

    It may be as long as its run's history, and it wraps stored values (each within
    ``MAX_DEPTH``) a few levels down; text neither database stores (a NUL, a lone
    surrogate) is refused here rather than by the database halfway through.
    """
    try:
        document = parse_json(data, sized=False, max_depth=SNAPSHOT_DEPTH)
    except TextDataError as exc:
        raise SnapshotError(f"a snapshot is a JSON document: {exc}") from None
    problem = unstorable(document, max_depth=SNAPSHOT_DEPTH, numbers=False)
    if problem is not None:
        where, reason = problem
        raise SnapshotError(f"{where}: {reason}")
    snapshot_validate(document)
    assert isinstance(document, dict)  # the schema says so
    return document


def _check(document: dict[str, Any]) -> None:
    """What the schema cannot say: the run's values are in range, and references hold."""
    status = document["run"]["status"]
    if status not in RUN_TERMINAL:
        raise SnapshotError(
            f"only a finished run can be archived; this snapshot's run is {status!r}"
        )
    try:  # the range every submitted run is held to (intake's one rule)
        max_parallel_check(document["run"]["max_parallel"])
    except MaxParallelError as exc:
        raise SnapshotError(f"run.{exc}") from None
    versions = [p["version"] for p in document["plans"]]
    if len(set(versions)) != len(versions):
        raise SnapshotError("two plan versions share a number")
    known = set(versions)
    refs = [document["run"]["current_plan_version"]]
    refs += [p["parent_version"] for p in document["plans"]]
    refs += [c["plan_version"] for c in document["llm_calls"]]
    if any(v is not None and v not in known for v in refs):
        raise SnapshotError("a plan version is referred to but not in the snapshot")
    for plan in document["plans"]:
        keys = [s["key"] for s in plan["steps"]]
        if len(set(keys)) != len(keys):
            raise SnapshotError(f"plan version {plan['version']} has two steps of one key")
    seqs = [e["seq"] for e in document["transcript"]]
    if len(set(seqs)) != len(seqs):
        raise SnapshotError("two transcript events share a sequence number")


def _plans(run: Run, document: dict[str, Any], ids: dict[str, dict[int, int]]) -> dict[int, Plan]:
    by_version: dict[int, Plan] = {}
    for p in sorted(document["plans"], key=lambda p: p["version"]):
        plan = Plan.objects.create(
            run=run,
            version=p["version"],
            parent=by_version.get(p["parent_version"]),
            source=p["source"],
            goal=p["goal"],
            document=p["document"],
            rollback=p["rollback"],
            is_valid=p["is_valid"],
            errors=p["errors"],
            diff=p["diff"],
        )
        Plan.objects.filter(pk=plan.pk).update(created_at=_time(p["created_at"]))
        by_version[plan.version] = plan
        ids["plans"][p["id"]] = plan.pk
        for s in p["steps"]:
            try:
                key = uuid.UUID(s["idempotency_key"])
            except ValueError:
                key = uuid.uuid4()
            step = Step.objects.create(
                plan=plan,
                run=run,
                **{
                    name: s[name]
                    for name in s
                    if name not in ("id", "idempotency_key", "started_at", "finished_at")
                },
                idempotency_key=key,
                started_at=_time(s["started_at"]),
                finished_at=_time(s["finished_at"]),
            )
            ids["steps"][s["id"]] = step.pk
    return by_version


def _remapped(payload: dict[str, Any], ids: dict[str, dict[int, int]]) -> dict[str, Any]:
    out = dict(payload)
    for key, table in _REMAPPED.items():
        old = out.get(key)
        if isinstance(old, int) and old in ids[table]:
            out[key] = ids[table][old]
    return out


def _redaction_state(counts: dict[str, int]) -> dict[str, Any]:
    """A fresh redaction state whose numbering goes on after the snapshot's placeholders."""
    seen = {kind: {f"imported:{i}": i for i in range(1, n + 1)} for kind, n in counts.items()}
    return {"salt": secrets.token_hex(16), "seen": seen}


@transaction.atomic
def snapshot_import(*, data: bytes, user: User | None) -> Run:
    """Restore the snapshot in ``data`` as a new, read-only archived run; return it.

    Raises ``SnapshotError`` (nothing written) for a file that is not a valid snapshot.
    """
    document = _parse(data)
    _check(document)
    t, r = document["task"], document["run"]
    task = Task.objects.create(
        **{name: t[name] for name in t if name not in ("submitted_by", "created_at")}
    )
    Task.objects.filter(pk=task.pk).update(created_at=_time(t["created_at"]))
    run = Run.objects.create(
        task=task,
        status=r["status"],
        stop_reason=r["stop_reason"],
        max_parallel=r["max_parallel"],
        cancel_requested_at=_time(r["cancel_requested_at"]),
        cancel_rollback=r["cancel_rollback"],
        cancel_reason=r["cancel_reason"],
        started_at=_time(r["started_at"]),
        finished_at=_time(r["finished_at"]),
        redaction=_redaction_state(r["redacted"]),
    )
    ids: dict[str, dict[int, int]] = {"plans": {}, "steps": {}, "calls": {}}
    plans = _plans(run, document, ids)
    current = plans.get(r["current_plan_version"])
    Run.objects.filter(pk=run.pk).update(created_at=_time(r["created_at"]), current_plan=current)
    for c in document["llm_calls"]:
        fields = {k: v for k, v in c.items() if k not in ("id", "plan_version", "created_at")}
        call = LlmCall.objects.create(run=run, plan=plans.get(c["plan_version"]), **fields)
        LlmCall.objects.filter(pk=call.pk).update(created_at=_time(c["created_at"]))
        ids["calls"][c["id"]] = call.pk
    TranscriptEvent.objects.bulk_create(
        TranscriptEvent(
            run=run,
            seq=e["seq"],
            role=e["role"],
            kind=e["kind"],
            payload=_remapped(e["payload"], ids),
            created_at=_when(e["created_at"]),
        )
        for e in document["transcript"]
    )
    source = document["source"]
    digest = hashlib.sha256(data).hexdigest()
    RunArchive.objects.create(
        run=run,
        source=source["instance"],
        source_run_id=source["run_id"],
        format_version=document["format_version"],
        exported_at=_when(document["exported_at"]),
        digest=digest,
        submitted_by=t["submitted_by"] or "",
        reviews=document["reviews"],
        audit=document["audit"],
        provenance=document["provenance"],
    )
    audit_record(
        actor=user,
        action="run.imported",
        object_type="run",
        object_id=run.pk,
        after={"source": source, "digest": digest},
        run_id=run.pk,
    )
    run.refresh_from_db()
    return run
