"""Background tasks (the Django Tasks API): ids in, a service call, nothing else.

They are enqueued by ``runs.lifecycle.dispatch`` after the caller's transaction commits
and executed by django-tasks-db workers (``manage.py db_worker``, or threads of
the serving process in the embedded default). A task may run more than once or
for a run another worker already holds: the services it calls claim the run by
compare-and-swap, so a duplicate backs off without touching anything.
"""

from __future__ import annotations

from django_tasks import task

from runs.lifecycle.claim import run_execute


@task()
def execute_run(run_id: int) -> str:
    """Claim the run and execute it to its next stop (end, or a wait for a human)."""
    return run_execute(run_id=run_id)


@task()
def resume_run(run_id: int) -> str:
    """Resume a run after a reviewer's decision (escalation action or step gate)."""
    return run_execute(run_id=run_id)
