"""A shell tool's process: started under a supervisor, waited for, and ended with its whole group.

The worker never starts the tool itself. It starts ``supervise.py`` as the
leader of a new process group, hands it the tool's argv and environment over a
socket (the lifeline), and the supervisor starts the tool in that group. If the
worker process dies (SIGKILL included), the kernel closes its end of the
lifeline and the supervisor kills the group: a step caught by a crash never runs
on beside the worker that takes the run over. Cancellation (a timeout, an
operator's cancel) ends the group from here: SIGTERM, ``KILL_GRACE_SECONDS``,
then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KILL_GRACE_SECONDS = 2.0
SUPERVISOR = str(Path(__file__).with_name("supervise.py"))
# -I: no PYTHON* variables, user site or script directory; -S: no site-packages.
SUPERVISOR_ARGV = (sys.executable, "-I", "-S", SUPERVISOR)
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Supervised:
    """A started tool: its supervisor's process (the group leader) and our end of the lifeline."""

    proc: asyncio.subprocess.Process
    lifeline: socket.socket

    def release(self) -> None:
        """Close our end of the lifeline; call it once the group has ended."""
        self.lifeline.close()


async def start(argv: list[str], env: dict[str, str], cwd: str) -> Supervised:
    """Start ``argv`` under a supervisor; OSError when it cannot start (missing program or cwd)."""
    request = encode_request(argv, env)  # before anything starts: a value may not encode
    ours, theirs = socket.socketpair()
    try:
        proc = await asyncio.create_subprocess_exec(
            *SUPERVISOR_ARGV,
            stdin=theirs.fileno(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            start_new_session=True,  # the supervisor leads a group we can kill whole
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    supervised = Supervised(proc, ours)
    try:
        reply = await _handshake(ours, request)
    except BaseException:
        await uninterruptible(terminate(supervised))
        supervised.release()
        raise
    if not reply.startswith("started "):
        await wait_exit(proc, [])
        supervised.release()
        if reply.startswith("error "):
            raise OSError(reply[len("error ") :])
        raise OSError(f"the tool's supervisor stopped before starting it: {reply or 'no answer'}")
    return supervised


def encode_request(argv: list[str], env: dict[str, str]) -> bytes:
    """The supervisor's request: a length line, then NUL-separated argv count, argv, ``NAME=value``."""
    items = [str(len(argv)), *argv, *(f"{name}={value}" for name, value in env.items())]
    body = b"\0".join(os.fsencode(item) for item in items)
    return b"%d\n" % len(body) + body


async def _handshake(lifeline: socket.socket, data: bytes) -> str:
    """Send the request, return the supervisor's answer line ("" if it went away)."""
    loop = asyncio.get_running_loop()
    lifeline.setblocking(False)
    try:
        await loop.sock_sendall(lifeline, data)
    except OSError:
        return ""  # it died before reading: its exit tells no more
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = await loop.sock_recv(lifeline, 4096)
        if not chunk:
            break
        answer += chunk
    return answer.decode("utf-8", errors="replace").strip()


async def wait_exit(
    proc: asyncio.subprocess.Process, readers: Sequence[asyncio.Future[Any]]
) -> int:
    """Wait for the process to exit, and only that.

    On Python 3.11 ``Process.wait()`` also waits for the pipes to close, which a
    background grandchild can hold open forever; so poll the return code, waking
    early when the pipes close (the usual sign of an exit).
    """
    delay = 0.002
    while proc.returncode is None:
        pending = [r for r in readers if not r.done()]
        if pending:
            await asyncio.wait(pending, timeout=delay)
            if all(r.done() for r in pending):
                delay = 0.001  # the pipes just closed: the exit is due any moment
                continue
        else:
            await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return proc.returncode


async def drain(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    """Read to EOF, keeping ``cap`` bytes; reading on past it keeps the child from blocking."""
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(_READ_CHUNK):
        room = cap - len(kept)
        if room > 0:
            kept += chunk[:room]
        if len(chunk) > max(room, 0):
            truncated = True
    return bytes(kept), truncated


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs; zombies don't count.

    Zombies matter where PID 1 reaps orphans lazily (containers, microVMs): the
    group then looks alive long after every member has died.
    """
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return True  # no /proc: trust killpg
    for pid in entries:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            return True
    return False


async def terminate(supervised: Supervised) -> None:
    """SIGTERM the whole group, wait up to the grace period, SIGKILL what is left, reap."""
    proc = supervised.proc
    pgid = proc.pid  # start_new_session: the supervisor's pid is the group id
    _signal_group(pgid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KILL_GRACE_SECONDS
    while loop.time() < deadline:
        if proc.returncode is not None and not group_alive(pgid):
            break
        await asyncio.sleep(0.02)
    _signal_group(pgid, signal.SIGKILL)
    await wait_exit(proc, [])


async def end_started(start: asyncio.Future[Supervised]) -> None:
    """Let a cancelled start finish, then end the group it started (if it started one)."""
    try:
        supervised = await start
    except OSError:
        return
    try:
        await terminate(supervised)
    finally:
        supervised.release()


async def uninterruptible(cleanup: Awaitable[None]) -> None:
    """Finish ``cleanup`` even if we are cancelled again meanwhile (it is bounded in time)."""
    task = asyncio.ensure_future(cleanup)
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                return
    task.result()
