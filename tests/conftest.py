"""Suite-wide fixtures: named users per role, the postgres and browser markers, a loopback-only network."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from runs.execution.journal_link import close_kept_links
from runs.permissions import OPERATORS, REVIEWERS

# ---------------------------------------------------------------------------
# Network guard: tests may talk to loopback (fake servers, PostgreSQL, Redis)
# and to Unix sockets, never to the outside world (no real LLM calls, ever).
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost":
            return
        raise OSError(
            f"tests may not resolve or reach {host!r}: only loopback is allowed"
        ) from None
    if not ip.is_loopback:
        raise OSError(f"tests may not reach {host}: only loopback is allowed")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(self, address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


# ---------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("browser") is not None and not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"this test needs Chromium at {CHROMIUM} and CI must provide it")
        pytest.skip(f"needs Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    if item.get_closest_marker("postgres") is None:
        return
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        if os.environ.get("CI"):
            pytest.fail("this test needs PostgreSQL (DATABASE_URL) and CI must provide it")
        pytest.skip(
            "needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres"
        )


@pytest.fixture(scope="session", autouse=True)
def _executor_links_closed_before_the_test_database_goes(django_db_setup: None) -> Iterator[None]:
    """Threads that execute runs keep their journal's connection; PostgreSQL drops no
    database that a connection still uses."""
    yield
    close_kept_links()


@pytest.fixture(autouse=True)
def _no_embedded_worker(settings: Any, tmp_path: Any) -> None:
    """Tests drive execution explicitly; sandboxed demo tools write under tmp."""
    settings.PLANNERWEB_WORKER = "none"
    settings.PLANNERWEB_SANDBOX_DIR = tmp_path / "sandbox"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def no_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OpenAI key in the environment, directly or as a file: the openai planner is unusable."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY_FILE", raising=False)


def _user(username: str, *groups: str, staff: bool = False) -> User:
    user = User.objects.create_user(username, f"{username}@example.test", "pw-" + username)
    user.is_staff = staff
    user.save()
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def operator(db: None) -> User:
    """Olivia submits tasks and starts runs."""
    return _user("olivia", OPERATORS)


@pytest.fixture
def reviewer(db: None) -> User:
    """Rob reviews plans."""
    return _user("rob", REVIEWERS)


@pytest.fixture
def admin_user(db: None) -> User:
    """Ada is staff: she edits the tool registry."""
    return _user("ada", staff=True)


@pytest.fixture
def outsider(db: None) -> User:
    """Oscar has an account but no role."""
    return _user("oscar")
