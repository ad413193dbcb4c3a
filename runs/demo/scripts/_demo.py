"""Shared by the demo tool scripts: one JSON object out, errors on stderr, the demo database.

Every script runs with the sandbox folder as its working directory (the tool's
``cwd``); paths given as parameters must stay inside it.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

DEFAULT_DB = "prod.db"

_USERS = [
    (1, "Ada Lovelace"),
    (2, "Grace Hopper"),
    (3, "Alan Turing"),
    (4, "Edsger Dijkstra"),
    (5, "Barbara Liskov"),
]
# (id, user_id, total_cents, status): several users have more than one order.
_ORDERS = [
    (1, 1, 1250, "paid"),
    (2, 1, 4999, "shipped"),
    (3, 2, 700, "paid"),
    (4, 3, 15000, "refunded"),
    (5, 3, 320, "paid"),
    (6, 3, 8900, "shipped"),
    (7, 4, 2100, "paid"),
    (8, 5, 999, "pending"),
    (9, 5, 4500, "paid"),
    (10, 2, 1200, "shipped"),
]


def emit(result: dict[str, Any]) -> NoReturn:
    """Print the tool's result (one JSON object) and exit 0."""
    print(json.dumps(result, sort_keys=True))
    sys.exit(0)


def fail(message: str) -> NoReturn:
    """Report a failure on stderr and exit 1; the executor shows the message."""
    print(message, file=sys.stderr)
    sys.exit(1)


def run(main: Callable[[], None]) -> None:
    """Call ``main``, turning database and file errors into a clear failure."""
    try:
        main()
    except (sqlite3.Error, OSError) as exc:
        fail(f"{type(exc).__name__}: {exc}")


def boolean(text: str) -> bool:
    """argparse type for ``--flag=true`` (parameters arrive as JSON text)."""
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def sandbox_path(value: str, what: str = "path") -> Path:
    """Resolve ``value`` inside the sandbox (the cwd); refuse anything that escapes it."""
    root = Path.cwd().resolve()
    path = (root / value).resolve()
    if not value or not path.is_relative_to(root) or path == root:
        fail(f"refused: {what} {value!r} must be a file path inside the sandbox")
    return path


def relative(path: Path) -> str:
    return str(path.relative_to(Path.cwd().resolve()))


def connect(path: Path) -> sqlite3.Connection:
    """Open a database in autocommit mode (transactions are explicit BEGIN/COMMIT)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def ensure_demo_db(path: Path) -> bool:
    """Create the demo "production database" (users, orders) if it does not exist yet."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        conn.executescript(
            """
            BEGIN;
            CREATE TABLE users (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                created_at TEXT NOT NULL
            );
            CREATE TABLE orders (
                id INTEGER PRIMARY KEY,
                user_id INTEGER NOT NULL REFERENCES users (id),
                total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
                status TEXT NOT NULL,
                created_at TEXT NOT NULL
            );
            CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL);
            PRAGMA user_version = 1;
            COMMIT;
            """
        )
        stamp = now()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO users VALUES (?, ?, ?)", [(*u, stamp) for u in _USERS])
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?)", [(*o, stamp) for o in _ORDERS]
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    return True


def table_columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return {
        name: [col[1] for col in conn.execute(f'PRAGMA table_info("{name}")')] for name in names
    }


def row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        for name in table_columns(conn)
    }


def copy_database(source: Path, target: Path) -> None:
    """Copy a SQLite database page by page (consistent even while it is in use)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def check_database_file(path: Path, what: str) -> None:
    """Fail unless ``path`` is an existing SQLite database."""
    if not path.is_file():
        fail(f"{what} {relative(path)!r} does not exist")
    with path.open("rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            fail(f"{what} {relative(path)!r} is not a SQLite database")
