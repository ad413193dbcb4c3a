"""``manage.py db_worker``: django-tasks-db's worker command, running ``runs.lifecycle.worker.RunWorker``.

Same options as the stock command but ``--reload`` (it shadows it: ``runs`` comes before
``django_tasks_db`` in INSTALLED_APPS); the poll interval defaults to
``PLANNERWEB_WORKER_POLL_SECONDS``, and the worker is woken by NOTIFY on
PostgreSQL and re-queues orphaned runs (``runs.lifecycle.recovery``). Without
``--queue-name`` it serves both queues: runs (``default``) and notification
deliveries (``notifications``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django_tasks_db.management.commands import db_worker

from runs.lifecycle.worker import RunWorker, tune_gc_for_service


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

    def handle(self, **options: Any) -> None:
        self.configure_logging(options["verbosity"])
        queue_names = options["queue_name"].split(",")
        excluded = options["exclude_queues"].split(",") if options["exclude_queues"] else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        if options["reload"]:
            raise CommandError("--reload is not supported; restart the worker after a deploy")
        worker = RunWorker(
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
