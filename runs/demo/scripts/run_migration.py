"""Demo tool: apply one of a fixed set of migrations to a sandbox database.

``--dry-run=true`` applies it to a throwaway copy and reports, leaving the
database alone. ``broken_migration`` is deliberately non-atomic (like a batched
backfill): its first part commits, its second fails, so only restoring the
backup undoes it.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _demo import (
    DEFAULT_DB,
    boolean,
    check_database_file,
    connect,
    copy_database,
    emit,
    ensure_demo_db,
    fail,
    now,
    relative,
    run,
    sandbox_path,
    table_columns,
)


@dataclass(frozen=True)
class Migration:
    description: str
    # Each part is one transaction; an atomic migration has exactly one part.
    parts: tuple[tuple[str, ...], ...]

    @property
    def atomic(self) -> bool:
        return len(self.parts) == 1


MIGRATIONS = {
    "add_email_to_users": Migration(
        "add users.email and fill it from the name",
        (
            (
                "ALTER TABLE users ADD COLUMN email TEXT",
                "UPDATE users SET email = lower(replace(name, ' ', '.')) || '@example.com'",
                "CREATE UNIQUE INDEX users_email ON users (email)",
            ),
        ),
    ),
    "add_orders_status_index": Migration(
        "index orders by status",
        (("CREATE INDEX orders_status ON orders (status)",),),
    ),
    "broken_migration": Migration(
        "add orders.legacy_ref, then allow one order per user (the data says otherwise)",
        (
            (
                "ALTER TABLE orders ADD COLUMN legacy_ref TEXT",
                "UPDATE orders SET legacy_ref = 'L-' || id",
            ),
            ("CREATE UNIQUE INDEX orders_one_per_user ON orders (user_id)",),
        ),
    ),
}


class MigrationFailed(Exception):
    def __init__(self, message: str, *, committed_parts: int) -> None:
        super().__init__(message)
        self.committed_parts = committed_parts


def apply(path: Path, name: str, migration: Migration) -> int:
    """Apply every part in its own transaction; returns the number of statements run."""
    conn = connect(path)
    count = 0
    statement = "BEGIN"
    try:
        for number, part in enumerate(migration.parts, start=1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in part:
                    conn.execute(statement)
                    count += 1
                if number == len(migration.parts):
                    statement = "INSERT INTO schema_migrations ..."
                    conn.execute(
                        "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                        (name, now()),
                    )
                    version = conn.execute("PRAGMA user_version").fetchone()[0]
                    conn.execute(f"PRAGMA user_version = {int(version) + 1}")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise MigrationFailed(
                    f"migration {name} failed at {statement!r}: {exc}", committed_parts=number - 1
                ) from exc
            conn.execute("COMMIT")
    finally:
        conn.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--migration", required=True)
    parser.add_argument("--dry-run", type=boolean, default=False)
    parser.add_argument("--backup", default=None, help="refuse to run unless this backup exists")
    args = parser.parse_args()
    migration = MIGRATIONS.get(args.migration)
    if migration is None:
        fail(f"unknown migration {args.migration!r} (known: {', '.join(MIGRATIONS)})")
    db = sandbox_path(args.db, "db")
    ensure_demo_db(db)
    if args.backup:
        check_database_file(sandbox_path(args.backup, "backup"), "backup")
    conn = connect(db)
    try:
        done = conn.execute(
            "SELECT applied_at FROM schema_migrations WHERE name = ?", (args.migration,)
        ).fetchone()
    finally:
        conn.close()
    result = {
        "db": relative(db),
        "migration": args.migration,
        "description": migration.description,
        "atomic": migration.atomic,
        "dry_run": args.dry_run,
    }
    if done:
        emit(result | {"applied": False, "already_applied_at": done[0]})
    if args.dry_run:
        with tempfile.TemporaryDirectory(prefix="dry-run-", dir=db.parent) as tmp:
            copy = Path(tmp) / db.name
            copy_database(db, copy)
            try:
                statements = apply(copy, args.migration, migration)
            except MigrationFailed as exc:
                fail(f"dry run on a copy (the database is unchanged): {exc}")
            conn = connect(copy)
            try:
                tables = table_columns(conn)
            finally:
                conn.close()
        emit(result | {"applied": False, "statements": statements, "tables_after": tables})
    try:
        statements = apply(db, args.migration, migration)
    except MigrationFailed as exc:
        if exc.committed_parts:
            fail(
                f"{exc}; {exc.committed_parts} of {len(migration.parts)} parts were already "
                "committed (this migration is not atomic): restore the backup to undo them"
            )
        fail(f"{exc}; the transaction was rolled back, the database is unchanged")
    conn = connect(db)
    try:
        tables = table_columns(conn)
    finally:
        conn.close()
    emit(result | {"applied": True, "statements": statements, "tables_after": tables})


if __name__ == "__main__":
    run(main)
