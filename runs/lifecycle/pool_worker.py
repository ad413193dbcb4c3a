"""Pool workers: threads that call the tools of queued steps for the runs' owners.

``manage.py db_worker --queue sql`` serves the ``sql`` queue (``runs.pools`` has the
protocol). Each of ``PLANNERWEB_POOL_THREADS`` threads loops:

1. heartbeat (``WorkerBeat``) so pages can tell a queue has a live worker;
2. claim the oldest pending step of its queues (committed with its
   ``step.claimed`` event before the tool is called);
3. call the tool under its timeout, renewing the lease each heartbeat and
   stopping the call when the row was cancelled or taken from it;
4. write the outcome (compare-and-swap on its own claim).

The same rules as a call by the run's owner apply: parameters were checked by the
owner, the idempotency key goes with the call, results and errors are redacted
before they are stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections

from runs.models import Tool
from runs.pools import (
    Claimed,
    remote_step_claim,
    remote_step_finish,
    remote_step_renew,
    worker_beat,
    worker_gone,
)
from runs.textdata import storable_copy, storable_text
from runs.tools.base import ToolConfigError, ToolError, ToolSpec
from runs.tools.registry import call_timeout, invoke_tool

log = logging.getLogger(__name__)


class PoolServer:
    """Serves tool queues with a few threads; ``start`` / ``stop`` from any thread."""

    def __init__(self, *, worker_id: str, queues: list[str], threads: int | None = None) -> None:
        self.worker_id = worker_id[-100:]
        self.queues = list(queues)
        count = settings.PLANNERWEB_POOL_THREADS if threads is None else threads
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._serve, args=(i,), name=f"plannerweb-pool-{i}", daemon=True
            )
            for i in range(max(1, count))
        ]

    def start(self) -> None:
        log.info("pool worker %s serving queues %s", self.worker_id, ",".join(self.queues))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; calls in hand finish first (up to ``timeout`` each)."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        try:
            worker_gone(worker_id=self.worker_id)
        except Exception:
            log.exception("pool worker %s: removing its heartbeat failed", self.worker_id)
        finally:
            connections.close_all()

    def wait(self) -> None:
        """Block until ``stop`` (a worker process serving only pools)."""
        while not self._stop.wait(1.0):
            pass

    def _serve(self, index: int) -> None:
        beat = float(settings.PLANNERWEB_HEARTBEAT_SECONDS)
        poll = float(settings.PLANNERWEB_POOL_POLL_SECONDS)
        next_beat = 0.0
        try:
            while not self._stop.is_set():
                close_old_connections()
                try:
                    if index == 0 and time.monotonic() >= next_beat:
                        worker_beat(worker_id=self.worker_id, queues=self.queues)
                        next_beat = time.monotonic() + beat
                    claimed = remote_step_claim(queues=self.queues, worker_id=self.worker_id)
                except Exception:
                    log.exception("pool worker %s: claiming failed", self.worker_id)
                    claimed = None
                if claimed is None:
                    self._stop.wait(poll)
                    continue
                self.execute(claimed)
        finally:
            connections.close_all()

    def execute(self, claimed: Claimed) -> None:
        """Call the claimed step's tool and write its outcome."""
        tool = Tool.objects.filter(pk=claimed.tool_id).first() if claimed.tool_id else None
        if tool is None or not tool.enabled:
            self._finish(
                claimed, ok=False, error=f"tool {claimed.tool_name!r} is missing or disabled"
            )
            return
        spec = ToolSpec.from_model(tool)
        connections.close_all()  # the call may be long: hold no connection meanwhile
        ok, result, error, retryable = asyncio.run(self._call(claimed, spec))
        if ok is None:
            return  # cancelled or taken from us: the row is no longer ours to write
        self._finish(claimed, ok=ok, result=result, error=error, retryable=retryable)

    async def _call(self, claimed: Claimed, spec: ToolSpec) -> tuple[bool | None, Any, str, bool]:
        invocation = invoke_tool(spec, claimed.params, claimed.idempotency_key)
        timeout = call_timeout(invocation, spec)
        call = asyncio.ensure_future(invocation)
        renew = asyncio.create_task(self._renew(claimed, call))
        try:
            result = await asyncio.wait_for(asyncio.shield(call), timeout)
        except TimeoutError:
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
            return False, None, f"timed out after {timeout:g}s", True
        except asyncio.CancelledError:
            return None, None, "", False  # the row was cancelled or lost
        except ToolConfigError as exc:
            return False, None, storable_text(exc.message), False
        except ToolError as exc:
            return False, None, storable_text(exc.message), True
        except Exception as exc:  # a broken tool fails its step, not the worker
            log.exception("tool %s raised", spec.name)
            return False, None, storable_text(f"{type(exc).__name__}: {exc}"), True
        finally:
            renew.cancel()
            await asyncio.gather(renew, return_exceptions=True)
        try:
            json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return False, None, f"tool returned a result that is not JSON: {exc}", False
        return True, storable_copy(result), "", True

    async def _renew(self, claimed: Claimed, call: asyncio.Task[Any]) -> None:
        """Renew the lease each heartbeat; stop the call once the row is no longer ours."""
        seconds = float(settings.PLANNERWEB_HEARTBEAT_SECONDS)
        main = asyncio.current_task()
        assert main is not None
        while True:
            await asyncio.sleep(seconds)
            try:
                ours = await asyncio.to_thread(_renew_closing, claimed, self.worker_id)
            except Exception:
                log.exception("pool worker %s: renewing step %s failed", self.worker_id, claimed.id)
                continue
            if not ours:
                log.warning(
                    "pool worker %s: step %s cancelled or taken", self.worker_id, claimed.id
                )
                call.cancel()
                return

    def _finish(self, claimed: Claimed, **outcome: Any) -> None:
        try:
            if not remote_step_finish(claimed=claimed, worker_id=self.worker_id, **outcome):
                log.warning(
                    "pool worker %s: step %s was no longer ours", self.worker_id, claimed.id
                )
        except Exception:
            log.exception("pool worker %s: recording step %s failed", self.worker_id, claimed.id)


def _renew_closing(claimed: Claimed, worker_id: str) -> bool:
    try:
        return remote_step_renew(claimed=claimed, worker_id=worker_id)
    finally:
        connections.close_all()
