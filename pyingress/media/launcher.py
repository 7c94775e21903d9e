"""Starting a session's media worker: forked from a warm zygote (zygote.py), or spawned as a fresh interpreter.

Why fork: a fresh ``python -m pyingress.media.worker`` spends ~0.2 CPU-s and ~0.2 s of wall time on the
interpreter and on importing PyAV before its first packet decodes, on every session.  The zygote pays that once
per service; forking a worker from it takes a few milliseconds, and the worker starts with everything imported.

The session talks to a forked worker over three pipes exactly as to a spawned one.  ``ForkedWorker`` offers the
part of ``subprocess.Popen`` the pipeline uses (pid, the pipe files, poll/wait/kill); exit statuses come from the
zygote, which is the worker's parent and reaps it.  When the zygote cannot run, workers are spawned instead.

Workers come in roles, each an entry module the zygote imports before it forks anything (``WORKER_ROLES``): the
transcoding worker of a session (``media``) and the demux worker of a URL ingress (``pull``), which parses what a
URL serves and is isolated for the same reason.

The zygote is started from the launcher's own long-lived thread: PR_SET_PDEATHSIG fires when the *thread* that
created a child exits, so a zygote started from a short-lived thread would be killed with it.
"""

import atexit
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import IO, Protocol

log = logging.getLogger(__name__)

LAUNCH_TIMEOUT = 30.0  # the first launch waits for the zygote's imports; a loaded machine can be slow
# Two malloc arenas are plenty for a decode thread and three encoders (measured: −6 MB for a 1080p worker).
_WORKER_ENV = {"MALLOC_ARENA_MAX": "2"}
# Role → the module whose ``main()`` a worker of that role runs (named, not imported: the zygote imports them).
WORKER_ROLES = {"media": "pyingress.media.worker", "pull": "pyingress.ingest.pull.worker"}


class WorkerProcess(Protocol):
    """What the pipeline needs of a worker process; ``subprocess.Popen`` and ``ForkedWorker`` both have it."""

    pid: int
    stdin: IO[bytes] | None
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


def spawn_worker(python: str = sys.executable, role: str = "media") -> "subprocess.Popen[bytes]":
    """A worker in a fresh interpreter (the fallback, and the benchmark's comparison)."""
    return subprocess.Popen(
        [python, "-m", WORKER_ROLES[role]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=True,
        env={**_WORKER_ENV, **os.environ},
    )


class ForkedWorker:
    """A worker forked by the zygote: its pipes, a pidfd to kill it by, and the exit status the zygote reports."""

    def __init__(self, pid: int, pidfd: int, stdin: int, stdout: int, stderr: int) -> None:
        self.pid = pid
        self.stdin: IO[bytes] | None = os.fdopen(stdin, "wb")
        self.stdout: IO[bytes] | None = os.fdopen(stdout, "rb")
        self.stderr: IO[bytes] | None = os.fdopen(stderr, "rb")
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._lock = threading.Lock()
        self._exited = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired("pyingress.media.worker", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        with self._lock:
            if self._pidfd >= 0:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _set_exited(self, returncode: int) -> None:
        with self._lock:
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1
            self.returncode = returncode
        self._exited.set()


@dataclass
class _Launch:
    """A launch waiting for the zygote's answer; ``pipes`` are the session's ends."""

    pipes: tuple[int, int, int]
    done: threading.Event = field(default_factory=threading.Event)
    worker: ForkedWorker | None = None


class WorkerLauncher:
    """Launches media workers, forking them from one zygote per launcher (started on first use or ``start()``)."""

    def __init__(self, python: str = sys.executable, fork: bool = True) -> None:
        self.python = python
        self.fork = fork
        self._launch_lock = threading.Lock()  # one launch (and zygote start) at a time
        self._state_lock = threading.Lock()  # what the reader thread and launchers share
        self._control: socket.socket | None = None
        self._pending: dict[int, _Launch] = {}
        self._workers: dict[int, ForkedWorker] = {}
        self._ids = itertools.count(1)
        self.zygote_pid: int | None = None
        self._thread: threading.Thread | None = None  # starts the zygote and reads its answers, while it runs

    def start(self) -> bool:
        """Start the zygote now (idempotent); False when workers will be spawned instead."""
        with self._launch_lock:
            return self._ensure_zygote()

    def launch(self, role: str = "media") -> WorkerProcess:
        """A worker of ``role`` (``WORKER_ROLES``) with its stdin, stdout and stderr piped to us."""
        if role not in WORKER_ROLES:
            raise ValueError(f"unknown worker role {role!r}")
        with self._launch_lock:
            if self._ensure_zygote():
                try:
                    return self._fork(role)
                except OSError as error:
                    log.warning("media worker zygote failed (%s); spawning this worker instead", error)
                    self._drop_zygote()
        return spawn_worker(self.python, role)

    def close(self) -> None:
        """Stop the zygote and wait for it; workers it forked are killed with it (PDEATHSIG)."""
        with self._launch_lock:
            self._drop_zygote()

    # -- inside --

    def _ensure_zygote(self) -> bool:
        if not self.fork:
            return False
        if self._control is not None:
            return True
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        started = threading.Event()
        thread = threading.Thread(
            target=self._run_zygote, args=(ours, theirs, started), name="media-zygote", daemon=True
        )
        thread.start()
        self._thread = thread
        started.wait()
        theirs.close()
        if self.zygote_pid is None:
            ours.close()
            return False
        self._control = ours
        return True

    def _run_zygote(self, control: socket.socket, theirs: socket.socket, started: threading.Event) -> None:
        try:
            zygote = subprocess.Popen(
                [self.python, "-m", "pyingress.media.zygote", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env={**_WORKER_ENV, **os.environ},
            )
        except OSError as error:
            log.warning("cannot start the media worker zygote (%s); workers will be spawned", error)
            started.set()
            return
        self.zygote_pid = zygote.pid
        started.set()
        try:
            self._read_answers(control)
        finally:
            with contextlib.suppress(OSError):
                control.shutdown(socket.SHUT_RDWR)  # whatever ended the reading, the zygote must go too
            zygote.wait()
            self._zygote_gone(control)

    def _read_answers(self, control: socket.socket) -> None:
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(control, 256, 1)
            except OSError:
                return
            if not message:
                return
            words = message.split()
            if words[0] == b"pid" and len(words) == 3 and len(fds) == 1:
                self._forked(int(words[1]), int(words[2]), fds[0])
            elif words[0] == b"exit" and len(words) == 3:
                with self._state_lock:
                    worker = self._workers.pop(int(words[1]), None)
                if worker is not None:
                    worker._set_exited(int(words[2]))
            else:
                for fd in fds:
                    os.close(fd)

    def _forked(self, launch_id: int, pid: int, pidfd: int) -> None:
        with self._state_lock:
            launch = self._pending.pop(launch_id, None)
            if launch is None:  # its launcher gave up waiting: nobody will ever talk to this worker
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                os.close(pidfd)
                return
            launch.worker = ForkedWorker(pid, pidfd, *launch.pipes)
            self._workers[pid] = launch.worker
        launch.done.set()

    def _fork(self, role: str) -> ForkedWorker:
        control = self._control
        assert control is not None
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        launch_id = next(self._ids)
        launch = _Launch((stdin_w, stdout_r, stderr_r))
        with self._state_lock:
            self._pending[launch_id] = launch
        try:
            socket.send_fds(control, [b"launch %d %s" % (launch_id, role.encode())], [stdin_r, stdout_w, stderr_w])
            launch.done.wait(LAUNCH_TIMEOUT)
        finally:
            for fd in (stdin_r, stdout_w, stderr_w):
                os.close(fd)  # the worker's ends: the zygote has its copies now
            with self._state_lock:
                self._pending.pop(launch_id, None)  # from here on a late answer kills its worker
                worker = launch.worker
            if worker is None:
                for fd in launch.pipes:
                    os.close(fd)
        if worker is None:
            raise OSError("the zygote did not fork a worker")
        return worker

    def _zygote_gone(self, control: socket.socket) -> None:
        """The zygote exited: its workers died with it (PDEATHSIG), and waiting launches fail."""
        with self._state_lock:
            workers, self._workers = list(self._workers.values()), {}
            pending, self._pending = list(self._pending.values()), {}
            if self._control is control:
                self._control = None
            self.zygote_pid = None
        control.close()
        for worker in workers:
            worker._set_exited(-signal.SIGKILL)
        for launch in pending:
            launch.done.set()

    def _drop_zygote(self) -> None:
        """End the zygote and wait until its thread has noted it, so the next launch starts a fresh one."""
        control = self._control
        if control is not None:
            with contextlib.suppress(OSError):
                control.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


_default: WorkerLauncher | None = None
_default_lock = threading.Lock()


def default_launcher() -> WorkerLauncher:
    """The process-wide launcher: one zygote per service."""
    global _default
    with _default_lock:
        if _default is None:
            _default = WorkerLauncher()
            atexit.register(_default.close)
        return _default
