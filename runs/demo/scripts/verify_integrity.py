"""Demo tool: integrity check, foreign key check and row counts of a sandbox database."""

from __future__ import annotations

import argparse

from _demo import (
    DEFAULT_DB,
    check_database_file,
    connect,
    emit,
    fail,
    relative,
    row_counts,
    run,
    sandbox_path,
    table_columns,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument(
        "--require-column", default=None, help="fail unless this table.column exists"
    )
    args = parser.parse_args()
    db = sandbox_path(args.db, "db")
    check_database_file(db, "database")
    conn = connect(db)
    try:
        integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        fk_violations = [
            {"table": r[0], "rowid": r[1], "parent": r[2]}
            for r in conn.execute("PRAGMA foreign_key_check")
        ]
        counts = row_counts(conn)
        columns = table_columns(conn)
    finally:
        conn.close()
    problems = [] if integrity == ["ok"] else [f"integrity_check: {'; '.join(integrity[:5])}"]
    if fk_violations:
        problems.append(f"{len(fk_violations)} foreign key violation(s), first: {fk_violations[0]}")
    if args.require_column:
        table, _, column = args.require_column.partition(".")
        if column not in columns.get(table, []):
            problems.append(f"column {args.require_column} is missing")
    if problems:
        fail(f"{relative(db)} is not healthy: " + "; ".join(problems))
    emit(
        {
            "db": relative(db),
            "ok": True,
            "integrity": "ok",
            "foreign_key_violations": 0,
            "row_counts": counts,
        }
    )


if __name__ == "__main__":
    run(main)
