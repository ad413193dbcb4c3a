"""Demo tool: copy a sandbox database to a backup file (the same path each time if given)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from _demo import (
    DEFAULT_DB,
    connect,
    copy_database,
    emit,
    ensure_demo_db,
    fail,
    relative,
    row_counts,
    run,
    sandbox_path,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument(
        "--path", default=None, help="backup file (default: backups/<db>-<time>.db)"
    )
    args = parser.parse_args()
    db = sandbox_path(args.db, "db")
    ensure_demo_db(db)
    if args.path:
        target = sandbox_path(args.path, "path")
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        target = sandbox_path(f"backups/{db.stem}-{stamp}.db", "path")
    if target == db:
        fail("refused: the backup path is the database itself")
    copy_database(db, target)
    conn = connect(target)
    try:
        tables = row_counts(conn)
    finally:
        conn.close()
    emit(
        {
            "db": relative(db),
            "path": relative(target),
            "bytes": target.stat().st_size,
            "tables": tables,
        }
    )


if __name__ == "__main__":
    run(main)
