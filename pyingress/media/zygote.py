"""The warm parent of media workers: imports PyAV and the transcoder once, then forks one worker per session.

Runs as ``python -m pyingress.media.zygote FD`` where FD is a SOCK_SEQPACKET socket to the launcher
(launcher.py).  Messages, one per packet:

    launcher → zygote   b"launch <id> <role>"  with three fds: the worker's stdin, stdout and stderr; the worker
                        runs ``main()`` of the role's module (launcher.WORKER_ROLES), imported here at start
    zygote → launcher   b"pid <id> <pid>" with one fd: a pidfd of the worker (kill without a pid-reuse race)
                        b"exit <pid> <returncode>"  when a worker is reaped (negative: killed by that signal)

Single-threaded on purpose: fork() copies only the calling thread, so a zygote with threads could hand a worker
a lock held forever.  It exits when the launcher's end of the socket closes, and with its parent (PDEATHSIG);
its workers die with it the same way, and see EOF on stdin when their session goes.
"""

import contextlib
import gc
import importlib
import os
import select
import signal
import socket
import sys
from collections.abc import Callable

from pyingress.media import worker
from pyingress.media.launcher import WORKER_ROLES

_MAX_MESSAGE = 256


def _entry_points() -> dict[bytes, Callable[[], object]]:
    """Every role's ``main``, imported now: a forked worker then starts with its code already loaded."""
    return {role.encode(): importlib.import_module(module).main for role, module in WORKER_ROLES.items()}


def _fork_worker(stdio: list[int], keep_closed: list[int], entry: Callable[[], object]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 70  # EX_SOFTWARE: worker.main() returned instead of exiting
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        for fd in [*stdio, *keep_closed]:
            if fd > 2:
                os.close(fd)
        entry()
    finally:
        os._exit(code)


def _reap(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        control.send(b"exit %d %d" % (pid, os.waitstatus_to_exitcode(status)))


def serve(control: socket.socket, entries: dict[bytes, Callable[[], object]]) -> int:
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd hears about exits
    signal.set_wakeup_fd(wake_write)
    while True:
        ready, _, _ = select.select([control.fileno(), wake_read], [], [])
        if wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 512)
        if control.fileno() in ready:
            message, fds, _, _ = socket.recv_fds(control, _MAX_MESSAGE, 3)
            if not message:
                return 0  # the launcher is gone
            words = message.split()
            entry = entries.get(words[2]) if len(words) == 3 else None
            if words[:1] == [b"launch"] and entry is not None and len(fds) == 3:
                pid = _fork_worker(fds, [control.fileno(), wake_read, wake_write], entry)
                pidfd = os.pidfd_open(pid)
                socket.send_fds(control, [b"pid %s %d" % (words[1], pid)], [pidfd])
                os.close(pidfd)
            for fd in fds:  # the worker has its copies; ours would hide EOF from the session
                os.close(fd)
        _reap(control)


def main() -> int:
    worker.die_with_parent()
    entries = _entry_points()
    # Everything imported so far moves out of the collector's sight: collections in the workers then never touch
    # (and so never copy) the pages they share with the zygote.
    gc.freeze()
    control = socket.socket(fileno=int(sys.argv[1]))
    try:
        return serve(control, entries)
    except (BrokenPipeError, ConnectionResetError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
