"""Runs one stdio MCP server so that it never outlives the worker that started it.

Run as ``python -I -S lifeline.py ARGV...`` as the leader of a new process group
(the SDK starts stdio servers with ``start_new_session``). Its stdout and stderr
are the worker's pipes, which the server inherits; its stdin is the worker's
pipe too, relayed to the server through a pipe of its own.

1. Start the server (an argv list, never a shell string) in this process group.
2. Relay the worker's stdin to the server until it ends. It ends when the
   worker closes the session or dies in any way, SIGKILL included (the kernel
   closes its descriptors): close the server's stdin then, as the MCP shutdown
   sequence asks, and give it a short grace period to exit.
3. Then SIGKILL the whole group: a server that ignores the end of its stdin,
   hangs, or left children behind goes with it.
4. A server that exits on its own ends the relay: exit with its status.
"""

import os
import select
import signal
import sys

GRACE_SECONDS = 2.0
_CHUNK = 65536


def main() -> int:
    """Start, relay, and end the server (see the module docstring)."""
    argv = sys.argv[1:]
    read_end, write_end = os.pipe()
    try:
        pid = os.posix_spawnp(
            argv[0],
            argv,
            dict(os.environ),
            file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0)],
        )
    except OSError as exc:
        os.write(2, f"cannot start the MCP server {argv[0]!r}: {exc}\n".encode())
        return 127
    os.close(read_end)
    os.set_blocking(write_end, False)
    pidfd = os.pidfd_open(pid)
    status = _relay(pid, pidfd, write_end)
    if status is not None:
        return status
    os.close(write_end)
    if select.select([pidfd], [], [], GRACE_SECONDS)[0]:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) % 256
    os.killpg(os.getpgrp(), signal.SIGKILL)
    return 137


def _relay(pid: int, pidfd: int, write_end: int) -> int | None:
    """Copy stdin to the server until stdin ends (None) or the server exits (its status)."""
    pending = b""
    stdin_open = True
    while stdin_open or pending:
        readers = [pidfd] + ([0] if stdin_open and len(pending) < _CHUNK else [])
        writers = [write_end] if pending else []
        readable, writable, _ = select.select(readers, writers, [])
        if pidfd in readable:
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) % 256
        if 0 in readable:
            data = os.read(0, _CHUNK)
            if not data:
                return None
            pending += data
        if writable:
            try:
                pending = pending[os.write(write_end, pending) :]
            except BlockingIOError:
                pass
            except BrokenPipeError:
                pending = b""  # the server closed its stdin: wait for its exit
    return None


if __name__ == "__main__":
    sys.exit(main())
