"""Demo tool: the tables and columns of a sandbox database (created on first use)."""

from __future__ import annotations

import argparse

from _demo import (
    DEFAULT_DB,
    connect,
    emit,
    ensure_demo_db,
    relative,
    run,
    sandbox_path,
    table_columns,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=DEFAULT_DB)
    args = parser.parse_args()
    path = sandbox_path(args.db, "db")
    created = ensure_demo_db(path)
    conn = connect(path)
    try:
        tables = table_columns(conn)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        applied = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY rowid")]
    finally:
        conn.close()
    emit(
        {
            "db": relative(path),
            "tables": tables,
            "version": version,
            "migrations": applied,
            "created": created,
        }
    )


if __name__ == "__main__":
    run(main)
