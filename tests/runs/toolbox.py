"""Python-kind tools for executor tests: rendezvous, gates, call records, flaky tools.

State is keyed by a per-test ``key`` param so tests never see each other's calls.
Everything blocking has a bounded wait so a broken scheduler fails a test
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any, NoReturn

from runs.tools.base import ToolError

_lock = threading.Lock()
CALLS: dict[str, list[str]] = defaultdict(list)
_arrived: dict[str, set[str]] = defaultdict(set)
_opened: dict[str, set[str]] = defaultdict(set)
_failures: dict[str, int] = defaultdict(int)
WAIT_LIMIT = 5.0


def _record(key: str, label: str) -> None:
    with _lock:
        CALLS[key].append(label)


async def rendezvous(key: str, label: str, group: str, parties: int) -> dict[str, Any]:
    """Finish only once ``parties`` steps of ``group`` are inside this call at the same time."""
    _record(key, f"start:{label}")
    _arrived[f"{key}/{group}"].add(label)
    for _ in range(int(WAIT_LIMIT / 0.005)):
        if len(_arrived[f"{key}/{group}"]) >= parties:
            _record(key, f"end:{label}")
            return {"label": label, "met": sorted(_arrived[f"{key}/{group}"])}
        await asyncio.sleep(0.005)
    raise ToolError(f"{label}: the other steps of {group!r} never ran at the same time")


_meetings: dict[str, tuple[asyncio.Event, set[str]]] = {}


async def meet(key: str, label: str, parties: int) -> dict[str, Any]:
    """Return together: once ``parties`` calls of ``key`` are in, they all return in one loop round."""
    event, arrived = _meetings.setdefault(key, (asyncio.Event(), set()))
    arrived.add(label)
    if len(arrived) >= parties:
        event.set()
    try:
        await asyncio.wait_for(event.wait(), WAIT_LIMIT)
    except TimeoutError:
        raise ToolError(f"{label}: only {len(arrived)} of {parties} calls came") from None
    return {"label": label}


async def wait_gate(key: str, label: str, gate: str) -> dict[str, Any]:
    """Block until ``open_gate`` opened ``gate`` (the test fails if that never happens)."""
    _record(key, f"start:{label}")
    for _ in range(int(WAIT_LIMIT / 0.005)):
        if gate in _opened[key]:
            _record(key, f"end:{label}")
            return {"label": label}
        await asyncio.sleep(0.005)
    raise ToolError(f"{label}: gate {gate!r} never opened")


async def open_gate(key: str, label: str, gate: str) -> dict[str, Any]:
    _record(key, f"start:{label}")
    _opened[key].add(gate)
    _record(key, f"end:{label}")
    return {"label": label, "opened": gate}


def record(key: str, label: str, value: Any = None) -> dict[str, Any]:
    _record(key, label)
    return {"label": label, "value": value, "path": f"/backups/{label}.db"}


async def record_slow(key: str, label: str, seconds: float = 0.0) -> dict[str, Any]:
    """``record`` after ``seconds``: a call long enough to be caught mid-flight."""
    await asyncio.sleep(seconds)
    return record(key, label)


def flaky(key: str, label: str, fail_times: int) -> dict[str, Any]:
    """Fail the first ``fail_times`` calls, then succeed."""
    with _lock:
        _failures[f"{key}/{label}"] += 1
        n = _failures[f"{key}/{label}"]
    _record(key, f"{label}#{n}")
    if n <= fail_times:
        raise ToolError(f"{label} failed on attempt {n}")
    return {"label": label, "attempt": n}


def flaky_keyed(key: str, label: str, idempotency_key: str, fail_times: int = 0) -> dict[str, Any]:
    """``flaky`` that records the idempotency key each call received."""
    with _lock:
        _failures[f"{key}/{label}"] += 1
        n = _failures[f"{key}/{label}"]
    _record(key, f"{label}#{n}:{idempotency_key}")
    if n <= fail_times:
        raise ToolError(f"{label} failed on attempt {n}")
    return {"label": label, "attempt": n}


async def flaky_now(key: str, label: str, fail_times: int) -> dict[str, Any]:
    """``flaky`` on the loop: it fails before ever waiting, so before the loop goes idle."""
    return flaky(key, label, fail_times)


def fail(key: str, label: str) -> dict[str, Any]:
    _record(key, label)
    raise ToolError(f"{label} failed on purpose")


def not_json(key: str, label: str) -> Any:
    return {"label": label, "bad": object()}


def not_finite(key: str, label: str) -> Any:
    """Python's json writes NaN, which no JSON reader (nor SQLite's JSON_VALID) accepts."""
    return {"label": label, "ratio": float("nan")}


def unstorable_text(key: str, label: str, kind: str, fail: bool = False) -> Any:
    """Text no PostgreSQL column takes as it is: a NUL, or a lone surrogate; or an error with it."""
    text = f"{kind} " + ("\x00" if kind == "nul" else "\ud800")
    if fail:
        raise ToolError(text)
    return {"label": label, "text": text}


_active: dict[str, int] = defaultdict(int)
MAX_ACTIVE: dict[str, int] = defaultdict(int)


async def probe(key: str, label: str, want: int) -> dict[str, Any]:
    """Track how many probes overlap; wait (bounded) until ``want`` are inside together."""
    _active[key] += 1
    MAX_ACTIVE[key] = max(MAX_ACTIVE[key], _active[key])
    try:
        for _ in range(int(2.0 / 0.005)):
            if MAX_ACTIVE[key] >= want:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.01)  # stay inside so an over-eager scheduler gets caught
        return {"label": label}
    finally:
        _active[key] -= 1


async def append_line(path: str, line: str, seconds: float = 0.0) -> dict[str, Any]:
    """A side effect other processes can count: one line per call, appended after ``seconds``."""
    await asyncio.sleep(seconds)
    with Path(path).open("a") as out:
        out.write(line + "\n")
    return {"line": line}


_slow_calls: dict[str, int] = defaultdict(int)


async def slow_once(key: str, label: str, seconds: float) -> dict[str, Any]:
    """Hang for ``seconds`` on the first call (to be timed out), return at once after."""
    _slow_calls[f"{key}/{label}"] += 1
    attempt = _slow_calls[f"{key}/{label}"]
    _record(key, f"{label}#{attempt}")
    if attempt == 1:
        await asyncio.sleep(seconds)
    return {"label": label, "attempt": attempt}


async def yields(key: str, label: str, times: int) -> dict[str, Any]:
    """Record the call as it starts (on the loop, not in a thread), then give the loop
    ``times`` turns before finishing, without ever letting it go idle."""
    _record(key, label)
    for _ in range(times):
        await asyncio.sleep(0)
    return {"label": label}


async def hang(key: str, label: str) -> dict[str, Any]:
    """Wait (bounded) until cancelled, recording the start and the cancel."""
    _record(key, label)
    try:
        await asyncio.sleep(WAIT_LIMIT)
    except asyncio.CancelledError:
        _record(key, f"{label}:cancelled")
        raise
    return {"label": label}


def _lock_waiters() -> int:
    from django.db import connection

    from runs.models import ResourceLock

    try:
        return ResourceLock.objects.filter(granted=False).count()
    finally:
        connection.close()


async def hold_lock(
    key: str, label: str, waiters: int = 0, gate: str = "", **_: Any
) -> dict[str, Any]:
    """A locked step's call: inside until ``waiters`` steps queue for a lock and ``gate`` opens.

    With neither, it returns at once; either way its start and end are recorded, so
    a test sees whether two such calls overlapped.
    """
    _record(key, f"start:{label}")
    for _ in range(int(WAIT_LIMIT * 2 / 0.01)):
        if (not waiters or await asyncio.to_thread(_lock_waiters) >= waiters) and (
            not gate or gate in _opened[key]
        ):
            _record(key, f"end:{label}")
            return {"label": label}
        await asyncio.sleep(0.01)
    raise ToolError(f"{label}: {waiters} lock waiter(s) and gate {gate!r} never came")


def open_gate_now(key: str, gate: str) -> None:
    """Open ``gate`` from the test itself (``wait_gate`` and ``hold_lock`` see it)."""
    _opened[key].add(gate)


def _announced_lock_waits() -> int:
    """Runs that said in their transcript that they wait for a lock (not just queued for it)."""
    from django.db import connection

    from runs.models import TranscriptEvent

    try:
        waits = TranscriptEvent.objects.filter(kind="step.lock_waiting")
        return waits.values("run_id").distinct().count()
    finally:
        connection.close()


async def span(path: str, label: str, waiters: int = 0, **_: Any) -> dict[str, Any]:
    """``hold_lock`` for other processes: its start and end are lines appended to ``path``.

    It stays inside until ``waiters`` runs announced that they wait for a lock, so
    their announcement names this run as the holder.
    """
    with Path(path).open("a") as out:
        out.write(f"start:{label}\n")
    for _ in range(int(60 / 0.02)):
        if not waiters or await asyncio.to_thread(_announced_lock_waits) >= waiters:
            break
        await asyncio.sleep(0.02)
    else:
        raise ToolError(f"{label}: {waiters} lock waiter(s) never came")
    with Path(path).open("a") as out:
        out.write(f"end:{label}\n")
    return {"label": label}


_inside: dict[str, int] = defaultdict(int)
MOST_INSIDE: dict[str, int] = defaultdict(int)


async def overlap_probe(key: str, label: str, seconds: float = 0.05) -> dict[str, Any]:
    """Wait ``seconds``, counting how many calls of ``key`` were inside at once (``MOST_INSIDE``)."""
    with _lock:
        _inside[key] += 1
        MOST_INSIDE[key] = max(MOST_INSIDE[key], _inside[key])
    try:
        await asyncio.sleep(seconds)
    finally:
        with _lock:
            _inside[key] -= 1
    _record(key, label)
    return {"label": label}


def spin(key: str, label: str, seconds: float) -> dict[str, Any]:
    """Keep a CPU busy in Python for ``seconds`` (a sync tool: it runs in a thread)."""
    import time

    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    _record(key, label)
    return {"label": label, "loops": n}


async def kill_worker(**params: Any) -> NoReturn:
    """SIGKILL the worker process that calls it, before its loop runs anything else.

    For crash tests in a real worker process only: called here it kills pytest.
    """
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: the process is gone")
