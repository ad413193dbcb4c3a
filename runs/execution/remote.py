"""A step whose tool names a queue: handed to that pool's workers, waited on without blocking.

The owner of the run keeps the step's state and journal; ``runs.pools`` holds the
row both sides share. The wait is a poll (``PLANNERWEB_POOL_POLL_SECONDS``) in the
step's own task, so other steps go on; a cancel marks the row cancelled, and the
pool worker holding it stops the call.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from django.conf import settings

from runs.dbthreads import in_db_thread
from runs.execution.steps import StepState
from runs.pools import (
    RS,
    RemoteSnapshot,
    remote_step_cancel,
    remote_step_read,
    remote_step_settle_lapsed,
    remote_step_submit,
)
from runs.tools.base import ToolConfigError, ToolError, ToolSpec


class RemoteStepLost(Exception):
    """The pool worker stopped mid-call and the tool is not repeatable: it may have partly run."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def runs_remotely(spec: ToolSpec, kinds_local: frozenset[str] | tuple[str, ...]) -> bool:
    """Whether the tool's calls go to a pool (a model-backed kind stays with the run's owner)."""
    return bool(spec.queue) and spec.kind not in kinds_local


async def call_remote(state: StepState, spec: ToolSpec, params: Any) -> Any:
    """Hand the call to the tool's queue and wait for its outcome; raises as a local call would."""
    adopt, state.adopt_remote = state.adopt_remote, False
    snap = await in_db_thread(
        lambda: remote_step_submit(step_id=state.id, queue=spec.queue, params=params, adopt=adopt)
    )
    poll = float(settings.PLANNERWEB_POOL_POLL_SECONDS)
    try:
        while True:
            if snap.lapsed:
                snap = await in_db_thread(
                    partial(remote_step_settle_lapsed, row_id=snap.id, repeatable=spec.repeatable)
                )
                continue
            if snap.status == RS.SUCCEEDED:
                return snap.result
            if snap.status == RS.CANCELLED:
                # The run's cancel reached the pool first: the executor is told within a heartbeat.
                await asyncio.sleep(float(settings.PLANNERWEB_HEARTBEAT_SECONDS) * 5)
                raise _failure(snap)
            if snap.status == RS.FAILED:
                raise _failure(snap)
            await asyncio.sleep(poll)
            snap = await in_db_thread(partial(remote_step_read, snap.id))
    except asyncio.CancelledError:
        # The run stops (a cancel, a timeout of the run, a lost lease): the pool lets go too.
        row_id = snap.id
        await asyncio.shield(in_db_thread(lambda: remote_step_cancel(row_id=row_id)))
        raise


def _failure(snap: RemoteSnapshot) -> Exception:
    if snap.status == RS.CANCELLED:
        return ToolConfigError("its pool step was cancelled")
    if not snap.retryable and snap.error.startswith("its pool worker"):
        return RemoteStepLost(snap.error)
    if not snap.retryable:
        return ToolConfigError(snap.error)
    return ToolError(snap.error)
