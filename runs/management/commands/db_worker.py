"""``manage.py db_worker``: django-tasks-db's worker command, running ``runs.lifecycle.worker.RunWorker``.

Same options as the stock command but ``--reload`` (it shadows it: ``runs`` comes before
``django_tasks_db`` in INSTALLED_APPS), plus ``--queue`` for executor pools; the poll interval defaults to
``PLANNERWEB_WORKER_POLL_SECONDS``, and the worker is woken by NOTIFY on
PostgreSQL and re-queues orphaned runs (``runs.lifecycle.recovery``). Without
``--queue-name`` it serves both queues: runs (``default``) and notification
deliveries (``notifications``). ``--queue sql,email`` serves those tool queues (the steps
of tools naming them) and nothing else; add ``default`` to the list to also execute runs.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django_tasks_db.management.commands import db_worker

from runs.lifecycle.leases import worker_identity
from runs.lifecycle.pool_worker import PoolServer
from runs.lifecycle.worker import RunWorker, tune_gc_for_service
from runs.pools import QUEUE_NAME

# Queues of django-tasks rows (runs, notification deliveries); any other name is a tool queue.
TASK_QUEUES = ("default", "notifications")


class Command(db_worker.Command):
    help = "Execute plannerweb's background tasks (runs) from the database queue."

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        # Runs and notification deliveries, unless told otherwise (docs/operations.md).
        parser.set_defaults(
            interval=settings.PLANNERWEB_WORKER_POLL_SECONDS,
            reload=False,
            queue_name="default,notifications",
        )
        parser.add_argument(
            "--queue",
            default="",
            help="Tool queues (executor pools) to serve, comma-separated, e.g. sql,email; "
            "'*' serves every queue. With 'default' in the list the worker also executes runs.",
        )

    def handle(self, **options: Any) -> None:
        self.configure_logging(options["verbosity"])
        queue_names = options["queue_name"].split(",")
        excluded = options["exclude_queues"].split(",") if options["exclude_queues"] else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        if options["reload"]:
            raise CommandError("--reload is not supported; restart the worker after a deploy")
        pool_queues: list[str] = []
        if options["queue"]:
            names = [n.strip() for n in options["queue"].split(",") if n.strip()]
            bad = [n for n in names if n != "*" and not QUEUE_NAME.match(n)]
            if not names or bad:
                raise CommandError(f"--queue: not a queue name: {', '.join(bad) or repr('')}")
            pool_queues = [n for n in names if n not in TASK_QUEUES]
            queue_names = [n for n in names if n in TASK_QUEUES]
            if not queue_names:
                self._serve_pools(pool_queues, options["worker_id"])
                return
        worker = RunWorker(
            pool_queues=pool_queues,
            queue_names=queue_names,
            excluded_queue_names=excluded,
            interval=options["interval"],
            batch=options["batch"],
            backend_name=options["backend_name"],
            startup_delay=options["startup_delay"],
            max_tasks=options["max_tasks"],
            worker_id=options["worker_id"],
        )
        worker.configure_signals()
        tune_gc_for_service()
        worker.run()

    def _serve_pools(self, queues: list[str], worker_id: str | None) -> None:
        """A worker serving only tool queues: pool threads until SIGTERM or SIGINT."""
        pool = PoolServer(worker_id=worker_id or worker_identity(), queues=queues)
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        tune_gc_for_service()
        pool.start()
        stopping.wait()
        pool.stop()
