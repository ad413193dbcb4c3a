"""``manage.py run_worker``: execute runs in a process of their own."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from runs.services import worker_identity
from runs.worker import Worker


class Command(BaseCommand):
    help = "Claim queued runs (and runs whose worker died) from the database and execute them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--threads", type=int, default=settings.PLANNERWEB_WORKER_THREADS)
        parser.add_argument("--poll", type=float, default=settings.PLANNERWEB_WORKER_POLL_SECONDS)

    def handle(self, *args: Any, **options: Any) -> None:
        worker = Worker(
            threads=options["threads"], poll_seconds=options["poll"], worker_id=worker_identity()
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        worker.start()
        self.stdout.write(f"worker {worker.worker_id} polling every {options['poll']}s")
        stop.wait()
        self.stdout.write("stopping: waiting for running runs to reach a stop")
        worker.stop(wait=True)
