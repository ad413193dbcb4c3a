"""The supervisor of one shell-tool process: the tool dies with the worker that started it.

Run as ``python -I -S supervise.py`` (no Django, no site-packages), as the leader
of a new process group, with its stdin a socket to the worker (the lifeline) and
its stdout and stderr the worker's pipes, which the tool inherits.

1. Read the request from the lifeline: ``<length>\\n`` then that many bytes,
   NUL-separated: the argv count, the argv items, then ``NAME=value`` items of
   the tool's environment (parameters never hold a NUL byte: the shell kind
   refuses them).
2. Start the tool in this process group (an argv list, never a shell string),
   stdin from /dev/null; answer ``started <pid>`` or ``error <message>``.
3. Wait for the tool to exit or for the lifeline to close. The lifeline closes
   when the worker process ends in any way, SIGKILL included (the kernel closes
   its descriptors): then SIGKILL the whole group, the tool's children and this
   process too. A parent-death signal would not do: it reaches only the direct
   child, and fires when the *thread* that forked ends, not the process.
4. Exit as the tool did (the same status, or the same signal), so the worker
   reads the tool's own exit.

SIGTERM, SIGINT and SIGHUP sent to the group (the worker's cancel) leave the
supervisor waiting for the tool; SIGKILL ends it with the rest of the group.

It starts for every shell call, so it imports only what is already loaded or
cheap: ``_signal`` rather than ``signal`` (which imports ``enum``), ``os.posix_spawn``
rather than ``subprocess``, no ``json``. That keeps its start to a few milliseconds.
"""

import _signal  # type: ignore[import-not-found]  # see the docstring: no stubs
import os
import resource
import select
import sys

LIFELINE = 0  # stdin
DEFAULT_PATH = b"/usr/local/bin:/usr/bin:/bin"
_POLL_SECONDS = 0.05  # only without pidfd_open (Linux < 5.3)
# Python starts with these ignored; a tool gets the default disposition, as from subprocess.
_RESTORED = (_signal.SIGPIPE, _signal.SIGXFSZ)
_LEFT_TO_THE_TOOL = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)


def main() -> int:
    """Supervise one tool process (see the module docstring); returns the exit status."""
    request = _read_request()
    if request is None:
        return 70  # the worker went away before asking for anything
    argv, env = request
    for sig in _LEFT_TO_THE_TOOL:
        # A handler, not SIG_IGN: the tool starts with the default disposition.
        _signal.signal(sig, _leave_to_the_tool)
    try:
        pid = os.posix_spawn(
            _find(argv[0], env),
            argv,
            env,
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)],
            setsigdef=_RESTORED,
        )
    except (OSError, ValueError) as exc:
        _send(b"error " + str(exc).replace("\n", " ").encode("utf-8", "replace") + b"\n")
        return 127
    _send(b"started %d\n" % pid)
    # Only the tool (and its children) hold the worker's pipes now: they close as it exits.
    for fd in (1, 2):
        os.close(fd)
    status = _watch(pid)
    if status < 0:
        _die_by(-status)
        return 128 - status
    return status


def _leave_to_the_tool(signum: int, frame: object) -> None:
    """The group's SIGTERM reached the tool too; keep waiting for it to exit."""


def _read_request() -> tuple[list[bytes], dict[bytes, bytes]] | None:
    data = b""
    while b"\n" not in data:
        chunk = _read(4096)
        if not chunk:
            return None
        data += chunk
    header, _, body = data.partition(b"\n")
    length = int(header)
    while len(body) < length:
        chunk = _read(max(65536, length - len(body)))
        if not chunk:
            return None
        body += chunk
    items = body.split(b"\0")
    count = int(items[0])
    argv = items[1 : 1 + count]
    env: dict[bytes, bytes] = {}
    for item in items[1 + count :]:
        name, _, value = item.partition(b"=")
        env[name] = value
    return argv, env


def _read(size: int) -> bytes:
    try:
        return os.read(LIFELINE, size)
    except OSError:  # reset by the worker's end: as good as closed
        return b""


def _send(data: bytes) -> None:
    try:  # noqa: SIM105 - contextlib is one import more at every start
        os.write(LIFELINE, data)
    except OSError:
        pass  # the worker is gone: _watch notices


def _find(program: bytes, env: dict[bytes, bytes]) -> str:
    """The program's path, searched in the tool's own PATH as ``execvpe`` would."""
    if b"/" in program:
        return os.fsdecode(program)
    for folder in env.get(b"PATH", DEFAULT_PATH).split(b":"):
        candidate = (folder or b".") + b"/" + program
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):  # noqa: PTH112
            return os.fsdecode(candidate)
    raise FileNotFoundError(2, "No such file or directory", os.fsdecode(program))


def _watch(pid: int) -> int:
    """Wait for the tool's exit; end the whole group if the lifeline closes first."""
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    watched = [LIFELINE] if pidfd is None else [LIFELINE, pidfd]
    timeout = _POLL_SECONDS if pidfd is None else None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        readable, _, _ = select.select(watched, [], [], timeout)
        if LIFELINE in readable and not _read(4096):
            # The worker's end closed: it died, or gave the tool up.
            os.killpg(os.getpgrp(), _signal.SIGKILL)


def _die_by(signum: int) -> None:
    """End this process with ``signum``, as the tool ended; no core file of our own."""
    try:  # noqa: SIM105 - see _send
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError):
        pass
    try:  # noqa: SIM105 - see _send
        _signal.signal(signum, _signal.SIG_DFL)
    except (OSError, ValueError):
        pass  # SIGKILL and SIGSTOP keep their default anyway
    os.kill(os.getpid(), signum)


if __name__ == "__main__":
    sys.stdout = sys.stderr = None  # 1 and 2 may be closed
    os._exit(main())  # nothing to flush or finalize: exit at once
