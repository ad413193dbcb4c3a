"""SQLite WAL checkpoints off the executors' commit path.

By default SQLite copies the write-ahead log back into the database file (a
checkpoint, ending in an fsync) inside whichever commit pushes the log past
1,000 pages: several milliseconds landing on a random step of some run
(measured: one commit in ~100 of a chain took 4.7 ms instead of 0.1 ms, and a
1000-step noop chain ran at 230 µs per step instead of 125 µs). Executors'
journal connections therefore turn automatic checkpoints off and nudge this
module's thread instead, which checkpoints on a connection of its own:

1. ``note_commit`` (called after each journal commit) counts commits and wakes
   the thread every ``EVERY_COMMITS``; the thread also looks once a second.
2. The thread runs ``PRAGMA wal_checkpoint(PASSIVE)``, which never waits for
   writers or readers; sqlite3 releases the GIL while it copies and syncs.

Other connections (the ORM's) keep SQLite's default, so the log stays bounded
even where no executor runs. PostgreSQL needs none of this.
"""

from __future__ import annotations

import logging
import threading

from django.db import connections

log = logging.getLogger(__name__)

EVERY_COMMITS = 64  # ~250 log pages for one-step commits, more for wide ones
IDLE_SECONDS = 1.0


class Checkpointer:
    """One daemon thread per database alias; see the module docstring."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._wake = threading.Event()
        self._commits = 0  # since the last checkpoint; approximate across threads
        self.checkpoints = 0
        threading.Thread(target=self._run, name=f"plannerweb-wal-{alias}", daemon=True).start()

    def note_commit(self) -> None:
        self._commits += 1
        if self._commits >= EVERY_COMMITS:
            self._wake.set()

    def _run(self) -> None:
        wrapper = connections.create_connection(self.alias)
        try:
            while True:
                self._wake.wait(IDLE_SECONDS)
                self._wake.clear()
                if not self._commits:
                    continue
                self._commits = 0
                try:
                    # Connect once: pytest-django refuses ensure_connection() even on an
                    # open connection after a test, which logged a failed checkpoint.
                    if wrapper.connection is None:
                        wrapper.ensure_connection()
                    wrapper.connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except Exception:  # a failed checkpoint is retried; SQLite's own remain
                    log.exception("WAL checkpoint of %s failed", self.alias)
                    wrapper.close()
        finally:
            wrapper.close()


_checkpointers: dict[str, Checkpointer] = {}
_lock = threading.Lock()


def checkpointer_for(alias: str) -> Checkpointer:
    """The alias's checkpointer, started on first use."""
    with _lock:
        found = _checkpointers.get(alias)
        if found is None:
            found = _checkpointers[alias] = Checkpointer(alias)
        return found
