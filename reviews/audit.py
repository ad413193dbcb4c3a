"""The audit trail: append-only entries, each hashed together with the one before.

Writers append under the chain head's lock (a row lock on PostgreSQL; SQLite's
write lock serialises writers already), so two concurrent writers can never
both build on the same previous hash and fork the chain.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from reviews.models import AuditChainHead, AuditEntry
from runs.models import TOOL_FIELDS
from runs.redaction import Redactor
from runs.statemachine import lock_rows

SYSTEM_ACTOR = "system"


def entry_hash(
    *,
    seq: int,
    actor_name: str,
    action: str,
    object_type: str,
    object_id: str,
    run_id: int | None,
    item_id: int | None,
    before: Any,
    after: Any,
    reason: str,
    created_at: datetime,
    prev_hash: str,
) -> str:
    """sha256 of the entry's canonical JSON (sorted keys, UTC microsecond time) and prev_hash."""
    body = json.dumps(
        {
            "seq": seq,
            "actor": actor_name,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "run_id": run_id,
            "item_id": item_id,
            "before": before,
            "after": after,
            "reason": reason,
            "at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "prev": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    # What the JSON column will hand back, so the hash computed now matches the one recomputed later.
    return None if value is None else json.loads(json.dumps(value, default=str))


@transaction.atomic(durable=False)
def audit_record(
    *,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: Any = "",
    before: Any = None,
    after: Any = None,
    reason: str = "",
    run_id: int | None = None,
    item_id: int | None = None,
) -> AuditEntry:
    """Append one entry to the chain (joins the caller's transaction, so it commits with the change)."""
    if run_id is not None:  # a run's entry holds run data: redacted like the run's rows
        red = Redactor(run_id)
        before, after, reason = red.value(before), red.value(after), red.text(reason)
    head = lock_rows(AuditChainHead.objects.filter(pk=1)).first()
    if head is None:
        head, _ = AuditChainHead.objects.get_or_create(pk=1)
        head = lock_rows(AuditChainHead.objects.filter(pk=1)).get()
    fields: dict[str, Any] = {
        "seq": head.last_seq + 1,
        "actor_name": actor.get_username() if actor is not None else SYSTEM_ACTOR,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "run_id": run_id,
        "item_id": item_id,
        "before": _canonical(before),
        "after": _canonical(after),
        "reason": reason,
        # Microseconds survive both SQLite and PostgreSQL, so the hash recomputes exactly.
        "created_at": timezone.now().astimezone(UTC),
        "prev_hash": head.last_hash,
    }
    digest = entry_hash(**fields)
    entry = AuditEntry.objects.create(actor=actor, hash=digest, **fields)
    AuditChainHead.objects.filter(pk=1).update(last_seq=entry.seq, last_hash=digest)
    return entry


def tool_snapshot(tool: Any) -> dict[str, Any]:
    return _canonical(model_to_dict(tool, fields=TOOL_FIELDS))


def model_snapshot(obj: Any, fields: Iterable[str]) -> dict[str, Any]:
    return _canonical(model_to_dict(obj, fields=list(fields)))


def changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
    return before != after


# --------------------------------------------------------------------------- verify
@dataclass(frozen=True)
class ChainProblem:
    seq: int
    message: str


def audit_verify(*, batch: int = 2000) -> list[ChainProblem]:
    """Recompute the chain; every broken link, in order (empty when the chain is intact).

    Detects an edited entry (its hash no longer matches), a deleted or inserted
    one (seq gap or prev_hash mismatch) and a truncated tail (the head disagrees).
    """
    problems: list[ChainProblem] = []
    prev_hash = ""
    expected_seq = 1
    last_seq = 0
    qs = AuditEntry.objects.order_by("seq")
    start = 0
    while True:
        rows = list(qs.filter(seq__gt=start)[:batch])
        if not rows:
            break
        for e in rows:
            if e.seq != expected_seq:
                problems.append(
                    ChainProblem(
                        e.seq, f"entry #{e.seq}: expected #{expected_seq} (entries missing)"
                    )
                )
            if e.prev_hash != prev_hash:
                problems.append(
                    ChainProblem(e.seq, f"entry #{e.seq}: does not link to the entry before it")
                )
            recomputed = entry_hash(
                seq=e.seq,
                actor_name=e.actor_name,
                action=e.action,
                object_type=e.object_type,
                object_id=e.object_id,
                run_id=e.run_id,
                item_id=e.item_id,
                before=e.before,
                after=e.after,
                reason=e.reason,
                created_at=e.created_at,
                prev_hash=e.prev_hash,
            )
            if recomputed != e.hash:
                problems.append(
                    ChainProblem(e.seq, f"entry #{e.seq}: content does not match its hash")
                )
            prev_hash = e.hash
            expected_seq = e.seq + 1
            last_seq = e.seq
        start = rows[-1].seq
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and (head.last_seq != last_seq or head.last_hash != prev_hash):
        problems.append(
            ChainProblem(
                last_seq + 1,
                f"chain head says #{head.last_seq} is last but the entries end at #{last_seq}",
            )
        )
    return problems


@dataclass(frozen=True)
class ChainCheck:
    entries: int
    problems: list[ChainProblem]

    def line(self) -> str:
        """One line for the audit page and ``audit_verify``: intact with its size, or the first break."""
        if not self.problems:
            return f"chain verified: {self.entries} entries"
        first = self.problems[0]
        count = len(self.problems)
        return (
            f"chain broken at entry #{first.seq}: {first.message} "
            f"({count} problem{'s' * (count != 1)})"
        )


def audit_check() -> ChainCheck:
    """``audit_verify`` with the number of entries, for the audit page and the command alike."""
    problems = audit_verify()
    return ChainCheck(AuditEntry.objects.count(), problems)


# --------------------------------------------------------------------------- export
CSV_COLUMNS = (
    "seq",
    "created_at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "run_id",
    "item_id",
    "reason",
    "before",
    "after",
    "prev_hash",
    "hash",
)


def audit_csv_rows(entries: Iterable[AuditEntry]) -> Iterable[str]:
    """CSV text line by line (header first), for a streaming response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for e in entries:
        writer.writerow(
            [
                e.seq,
                e.created_at.isoformat(),
                e.actor_name,
                e.action,
                e.object_type,
                e.object_id,
                "" if e.run_id is None else e.run_id,
                "" if e.item_id is None else e.item_id,
                _csv_safe(e.reason),
                "" if e.before is None else json.dumps(e.before, sort_keys=True),
                "" if e.after is None else json.dumps(e.after, sort_keys=True),
                e.prev_hash,
                e.hash,
            ]
        )
        yield flush()


def _csv_safe(text: str) -> str:
    # A cell starting with = + - @ is a formula in spreadsheets; reasons are user text.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def config_audit(
    *,
    actor: User | None,
    object_type: str,
    object_id: Any,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str = "",
) -> None:
    """Audit a change to tools, policies, kind settings or budgets (no entry when nothing changed)."""
    if before == after:
        return
    action = "created" if before is None else "deleted" if after is None else "changed"
    audit_record(
        actor=actor,
        action=f"{object_type}.{action}",
        object_type=object_type,
        object_id=object_id,
        before=before,
        after=after,
        reason=reason,
    )
