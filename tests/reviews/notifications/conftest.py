"""Notification fixtures: a webhook receiver on loopback, endpoints, subscribers, a delivery worker."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from reviews.models import ReviewSubscription, WebhookEndpoint
from runs.lifecycle.worker import RunWorker
from runs.permissions import REVIEWERS

SECRET = "s3cret-for-signing-0123456789"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class Receiver(ThreadingHTTPServer):
    """Records every POST; answers with the next scripted status (200 once the script is used up)."""

    received: list[Received]
    script: list[int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(Received(self.path, dict(self.headers), raw))
        status = self.server.script.pop(0) if self.server.script else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    httpd = Receiver(("127.0.0.1", 0), Handler)
    httpd.received, httpd.script = [], []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nobody listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@pytest.fixture
def blackhole_url() -> Iterator[str]:
    """A loopback URL that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    sock.close()


@pytest.fixture
def endpoint(receiver: Receiver) -> Callable[..., WebhookEndpoint]:
    def make(**fields: Any) -> WebhookEndpoint:
        values: dict[str, Any] = {"name": "ops", "url": receiver.url, "secret": SECRET}
        values.update(fields)
        return WebhookEndpoint.objects.create(**values)

    return make


@dataclass
class People:
    subscribed: User
    other_kind: User
    unsubscribed: User
    not_a_reviewer: User
    all: list[User] = field(default_factory=list)


@pytest.fixture
def people(reviewer: User, outsider: User) -> People:
    """Rob wants plan approvals; Rita only escalations; Una nothing; Oscar (no role) subscribed."""
    reviewers = Group.objects.get_or_create(name=REVIEWERS)[0]
    rita = User.objects.create_user("rita", "rita@example.test", "pw")
    una = User.objects.create_user("una", "una@example.test", "pw")
    reviewers.user_set.add(rita, una)
    ReviewSubscription.objects.create(user=reviewer, kinds=["plan_approval"])
    ReviewSubscription.objects.create(user=rita, kinds=["escalation"])
    ReviewSubscription.objects.create(user=outsider)
    return People(reviewer, rita, una, outsider, [reviewer, rita, una, outsider])


def deliver_all() -> None:
    """What a notifications worker does: take every ready delivery task, in this thread."""
    RunWorker(
        worker_id="notify-test", queue_names=["notifications"], batch=True, recovery_seconds=0
    ).run()


@pytest.fixture
def fast_notify(settings: Any) -> None:
    settings.PLANNERWEB_NOTIFY_TIMEOUT_SECONDS = 0.5
    settings.PLANNERWEB_NOTIFY_BACKOFF_SECONDS = 30
    settings.PLANNERWEB_NOTIFY_MAX_ATTEMPTS = 3
    settings.PLANNERWEB_BASE_URL = "https://plannerweb.example.test"
