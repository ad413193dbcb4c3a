"""Database settings: a Daphne under load holds a bounded number of PostgreSQL connections."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection

from runs.tokens import api_token_create
from tests.runs.processes import child_env, daphne, free_port, port_open, processes, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

POOL = 6
REQUESTS = 200


def server_connections() -> int:
    """Connections to the test database other than this test process's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def fire(port: int, token: str, count: int) -> Counter[int | str]:
    """``count`` API requests at once, each on its own thread; their status codes."""
    codes: Counter[int | str] = Counter()
    lock = threading.Lock()

    def one() -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/runs?limit=5",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                code: int | str = response.status
        except urllib.error.HTTPError as error:
            code = error.code
        except OSError as error:
            code = type(error).__name__
        with lock:
            codes[code] += 1

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def test_concurrent_requests_share_a_bounded_pool_of_connections(
    tmp_path: Path, operator: User
) -> None:
    token = api_token_create(user=operator, name="load").plaintext
    port = free_port()
    env = child_env(tmp_path, DATABASE_POOL_MAX_SIZE=str(POOL))
    logs = tmp_path / "logs"
    before = server_connections()
    with processes(daphne(port), env=env, logs=logs):
        wait_for(lambda: port_open(port), timeout=30, what="daphne to listen", logs=logs)
        first = fire(port, token, REQUESTS)
        second = fire(port, token, REQUESTS)
        held = server_connections() - before
    assert first == Counter({200: REQUESTS})
    assert second == Counter({200: REQUESTS})
    assert 1 <= held <= POOL
