"""Demo tool: restore a sandbox database from a backup file."""

from __future__ import annotations

import argparse

from _demo import (
    DEFAULT_DB,
    check_database_file,
    connect,
    copy_database,
    emit,
    fail,
    relative,
    row_counts,
    run,
    sandbox_path,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--backup", required=True)
    args = parser.parse_args()
    db = sandbox_path(args.db, "db")
    backup = sandbox_path(args.backup, "backup")
    if backup == db:
        fail("refused: the backup is the database itself")
    check_database_file(backup, "backup")
    # The backup API replaces every page of the target, schema included.
    copy_database(backup, db)
    conn = connect(db)
    try:
        tables = row_counts(conn)
    finally:
        conn.close()
    emit({"restored": True, "db": relative(db), "backup": relative(backup), "tables": tables})


if __name__ == "__main__":
    run(main)
