"""ORM work in a helper thread closes that thread's connections, whether it returns or raises."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runs import dbthreads


def _record_closes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    closed_on: list[int] = []
    monkeypatch.setattr(
        dbthreads.connections, "close_all", lambda: closed_on.append(threading.get_ident())
    )
    return closed_on


def test_work_runs_in_a_helper_thread_which_then_closes_its_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed_on = _record_closes(monkeypatch)
    ran_on: list[int] = []

    def work() -> str:
        ran_on.append(threading.get_ident())
        return "done"

    assert asyncio.run(dbthreads.in_db_thread(work)) == "done"
    assert ran_on == closed_on and ran_on != [threading.get_ident()]


def test_connections_are_closed_when_the_work_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    closed_on = _record_closes(monkeypatch)

    def work() -> None:
        raise LookupError("no such row")

    with pytest.raises(LookupError):
        dbthreads.closing_connections(work)()
    assert closed_on == [threading.get_ident()]
